"""The model card: rendered from generator.json (+ evaluation.json, best/), never edited in place."""

import json

from trainer import model_card, storage

META = {
    "latent_dim": 16,
    "resolution": 32,
    "channels": 3,
    "num_classes": 2,
    "class_names": ["cat", "a|b`c"],
    "step": 300,
    "dataset": "photos/:train",
    "num_train_images": 120,
    "version": "0.2.0",
}


def test_a_card_before_and_after_evaluation(tmp_path):
    store = storage.open_store(str(tmp_path / "job"))
    store.put("export/generator.json", json.dumps(META).encode())
    store.put("export/best/generator.json", json.dumps({**META, "step": 200, "kid": 0.0123}).encode())
    model_card.write(store, "export/", samples_png=b"\x89PNG fake")
    card = (tmp_path / "job" / "export" / "README.md").read_text()
    assert "| training data | `photos/:train`, 120 images |" in card and "| training steps | 300 |" in card
    assert "`cat`, `a\\|b'c`" in card  # a class name cannot break the table
    assert "0.0123 at step 200" in card and "![samples from this generator](samples.png)" in card
    assert "Not evaluated yet" in card
    report = {
        "config": {"real": "photos/:test"},
        "features": {"kind": "classifier"},
        "fidelity": {"fid": 12.345, "kid": 0.0042, "precision": 0.7, "recall": 0.6},
        "memorization": {"rate_either": 0.031},
        "gan_test": {"accuracy": 0.88, "normalised": 0.9},
        "downstream": {
            "verdict": "synthetic images: helps (+1.0 points [+0.2, +1.8] over the tuned augmentation)",
            "recipes": {"real": {"description": "real images only", "mean": 0.8, "runs": [0.8, 0.8]}},
            "cas_ratio": 0.5,
        },
    }
    where = model_card.record_evaluation(str(tmp_path / "job"), report, "eval/report.json", real_images=50)
    assert where.endswith("export/README.md")
    card = (tmp_path / "job" / "export" / "README.md").read_text()
    assert (
        "Not evaluated yet" not in card
        and "12.35 / 0.0042" in card
        and "| memorization (pixels or features) | 3.1% |" in card
    )
    assert "against `photos/:test` (50 images)" in card and "| downstream: real images only | 80.0% |" in card
    assert (
        "| GAN-test, normalised by real images | 0.90 |" in card
        and "Downstream verdict: synthetic images: helps" in card
    )
    assert json.loads((tmp_path / "job" / "export" / "evaluation.json").read_text())["gan_test"]["accuracy"] == 0.88


def test_shards_or_a_folder_without_an_export_get_no_card(tmp_path):
    assert model_card.record_evaluation(str(tmp_path), {}, "r.json", real_images=1) is None
