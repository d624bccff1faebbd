"""The experiment's own pieces: the procedural shapes dataset and the result tables."""

import numpy as np

from experiments import shapes, usefulness
from trainer import data


def test_shapes_are_a_pure_function_of_the_seed_and_load_with_splits(tmp_path):
    a, labels = shapes.make(per_class=3, seed=5)
    b, _ = shapes.make(per_class=3, seed=5)
    assert a.shape == (18, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert sorted(np.bincount(labels).tolist()) == [3] * len(shapes.NAMES)
    assert not np.array_equal(a, shapes.make(per_class=3, seed=6)[0])
    path = shapes.write(str(tmp_path / "shapes.npz"), per_class=10, seed=0)
    train, test = data.load_source(f"{path}:train", 32), data.load_source(f"{path}:test", 32)
    assert (len(train.images), len(test.images), train.num_classes) == (42, 18, 6)
    assert train.class_names == shapes.NAMES  # the names travel to plans, grids and shards


def test_tables_compare_each_recipe_with_the_strongest_baseline():
    run = {"mean": 0.5, "std": 0.01, "runs": [0.5]}
    results = {
        "runs": {
            "shapes 10%": {
                "train_images": 168,
                "teacher_ensemble_test": 0.4,
                "synthetic_teacher_agreement": 0.3,
                **{r: dict(run) for r in usefulness.RECIPES},
            }
        },
        "tuning shapes": {"idg": "idg x0.5", "modern": "randaugment 2/0.3"},
    }
    results["runs"]["shapes 10%"]["synthetic_distilled"] = {"mean": 0.53, "std": 0.01, "runs": [0.53]}
    text = usefulness.tables(results)
    assert "168 real training images" in text and "randaugment 2/0.3" in text
    assert "0.5300 +- 0.0100 (+3.0 pts vs strongest baseline)" in text


def test_results_merge_in_place_keeps_what_other_runs_wrote_and_what_this_run_holds():
    mine = {"runs": {"shapes 10% a": {"real": 1}}, "wall_s": {"x": 1}}
    done = mine["runs"]["shapes 10% a"]  # measure() keeps writing into this dict after each save
    usefulness.merge_into(mine, {"runs": {"shapes 10% b": {"real": 2}}, "wall_s": {"x": 9, "y": 2}})
    done["synthetic_hard"] = 3
    assert mine["runs"] == {"shapes 10% a": {"real": 1, "synthetic_hard": 3}, "shapes 10% b": {"real": 2}}
    assert mine["wall_s"] == {"x": 9, "y": 2}  # entries are written once: the one on disk stays


def test_variants_table_puts_each_generator_beside_the_defaults_with_its_validation_score():
    run = {"mean": 0.3, "std": 0.01, "runs": [0.3]}
    row = {r: dict(run) for r in usefulness.RECIPES} | {"synthetic_teacher_agreement": 0.5}
    variant = {r: dict(run) for r in usefulness.VARIANT_RECIPES} | {"synthetic_teacher_agreement": 0.7}
    variant["synthetic_hard"] = {"mean": 0.33, "std": 0.02, "runs": [0.33]}
    results = {
        "runs": {"shapes 10%": row, "shapes 10% ac1": variant},
        "tuning shapes": {"synthetic_share": 0.25, "synthetic_share_validation": {"0.25": 0.36}},
        "tuning shapes ac1": {"synthetic_share": 0.5, "synthetic_share_validation": {"0.5": 0.34}},
        "quality": {"shapes 10% ac1": {"gan_test": 0.445, "memorization": 0.123, "fid": 7.6}},
    }
    lines = usefulness.variants_table(results).splitlines()
    assert "| defaults | 0.3600 (0.25) |" in lines[4] and "| 50.0% |" in lines[4] and lines[4].endswith("| +0.0 |")
    assert lines[5].startswith("| ac1 | 0.3400 (0.5) | 44.5% | 12.3% | 7.60 | 70.0% | 0.3300 +- 0.0200 |")
    assert lines[5].endswith("| +3.0 |")


def test_levers_run_each_way_of_using_the_images_on_the_validation_split(smoke_job, tmp_path, monkeypatch):
    import json
    import os
    import types

    work = tmp_path / "work"
    work.mkdir()
    os.symlink(smoke_job, work / "digits-10")  # the generator at 10%: any finished job dir
    tuned = {"idg": "idg x0.5", "modern": "crop/flip/colour", "baseline": "idg x0.5", "synthetic_share": 0.25}
    (work / "results.json").write_text(json.dumps({"tuning digits": tuned}))  # tuning is not under test here
    levers = {
        "baseline (tuned policy alone)": {},
        "hard labels": {"labels": "hard"},
        "soft labels, teacher 3x, synthetic first 30% then real only": {
            "labels": "teacher",
            "teacher_steps": 3,
            "synthetic_first": 0.3,
            "share": 0.0,
        },
    }
    monkeypatch.setattr(usefulness, "LEVERS", levers)
    args = types.SimpleNamespace(work=str(work), variant="", gan_flags="", gan_steps=1, steps=20, num_synthetic=64)
    usefulness.Experiment(args).levers("digits")
    written = json.loads((work / "results.json").read_text())["levers digits 10%"]
    assert set(levers) | {"teacher 60 steps"} == set(written)
    assert all(len(written[name]["runs"]) == usefulness.LEVER_SEEDS for name in levers)
    assert [p.startswith("digits-10-idg_x0_5-60-") for p in os.listdir(work / "teachers")] == [True]
    lines = usefulness.levers_table(json.loads((work / "results.json").read_text())).splitlines()
    assert lines[2] == "| lever | digits 10% |"
    assert lines[4].startswith("| baseline (tuned policy alone) | 0.") and "(+" not in lines[4] and "(-" not in lines[4]
    assert lines[6].startswith("| soft labels, teacher 3x, synthetic first 30% then real only | 0.")
    assert lines[6].endswith(") |")  # its difference to the baseline, in points
    assert lines[-1].startswith("teacher ensembles on validation: digits 10%: teacher 60 steps 0.")
