"""trainer/shard_plan.py: the typed plan of a shard output, its JSON, and plans of older versions."""

import json

import pytest

from trainer.shard_plan import ShardPlan


def plan(**changes) -> ShardPlan:
    fields = dict(
        source="synthetic",
        num_images=10,
        num_shards=3,
        images_per_shard=4,
        seed=7,
        batch_size=16,
        resolution=32,
        channels=3,
        num_classes=2,
        augmentation={"flip": True},
        identity={"generator_sha256": "ab" * 32, "generator_train_data": "digits:train", "labels": "balanced"},
    )
    return ShardPlan(**{**fields, **changes})


def test_json_round_trip_keeps_the_keys_every_version_wrote():
    png = plan()
    written = json.loads(json.dumps(png.to_dict()))
    # a PNG plan has never named its format, and a plan without class names has no class_names key
    assert "image_format" not in written and "class_names" not in written and written["png_compression"] == 1
    assert written["generator_sha256"] == "ab" * 32 and written["format"] == "dcgan-factory shards"
    assert ShardPlan.from_dict(written) == png
    for other in (
        plan(image_format="jpeg", jpeg_quality=80),
        plan(image_format="raw"),
        plan(class_names=("cat", "dog")),
    ):
        again = ShardPlan.from_dict(json.loads(json.dumps(other.to_dict())))
        assert again == other and again.to_dict() == other.to_dict()
    assert "png_compression" not in plan(image_format="jpeg").to_dict()


def test_reads_a_plan_written_before_formats_and_class_names():
    old = plan().to_dict()
    del old["png_compression"]
    read = ShardPlan.from_dict(old)
    assert (read.image_format, read.png_compression, read.class_names) == ("png", 1, ())
    assert read.generator_train_data == "digits:train"


def test_work_split_and_filters():
    p = plan()
    assert p.shard_sizes() == [4, 4, 2]
    assert p.filters() == [] and p.is_whole(4, 4) and not p.is_whole(3, 4)
    assert not p.soft_labels and p.min_confidence == 0.0
    filtered = plan(identity={"memorization": {"max": 0.1}, "teacher": {"min_confidence": 0.5}})
    assert filtered.filters() == ["memorization", "teacher_confidence"]
    assert filtered.soft_labels and filtered.min_confidence == 0.5
    assert filtered.is_whole(3, 4) and filtered.is_whole(0, 4) and not filtered.is_whole(5, 4)
    assert plan(identity={"teacher": {"min_confidence": 0}}).filters() == []


@pytest.mark.parametrize(
    "change",
    [
        {"num_images": "10"},
        {"num_shards": True},
        {"seed": -1},
        {"resolution": 2**60},
        {"image_format": "gif"},
        {"png_compression": 12},
        {"class_names": ["a", 3]},
        {"augmentation": []},
        {"format": "something else"},
        {"source": None},
    ],
)
def test_a_malformed_plan_is_a_value_error(change):
    with pytest.raises(ValueError):
        ShardPlan.from_dict({**plan().to_dict(), **change})


@pytest.mark.parametrize("value", [None, [], "plan", 3])
def test_a_plan_that_is_not_an_object_is_a_value_error(value):
    with pytest.raises(ValueError):
        ShardPlan.from_dict(value)


def test_generator_train_data_of_a_hostile_plan_is_empty():
    assert plan(identity={"generator_train_data": ["x"]}).generator_train_data == ""
    assert plan(source="augmented", identity={}).generator_train_data == ""


def test_claim_creates_the_plan_once_and_refuses_another(tmp_path):
    from trainer import storage
    from trainer.errors import UserError
    from trainer.shard_plan import check_conflict, claim, read_plan

    store = storage.open_store(str(tmp_path / "out"))
    assert read_plan(store) is None
    claim(store, plan(), None)
    written = read_plan(store)
    assert written == json.loads(json.dumps(plan().to_dict()))
    claim(store, plan(), written)  # resuming with the same plan
    claim(store, plan(), None)  # another task created it meanwhile: re-read, same plan, accepted
    with pytest.raises(UserError, match=r"planned differently \(seed 7 -> 8\)"):
        claim(store, plan(seed=8), None)
    # partial: only the entries given are compared (the source's entries are unknown before it loads)
    flagged = plan(resolution=0, channels=0, num_classes=0, identity={}).flag_entries(batch_size_given=False)
    assert "resolution" not in flagged and "batch_size" not in flagged and flagged["image_format"] is None
    check_conflict(store.root, written, flagged, partial=True)
    with pytest.raises(UserError, match="batch_size 16 -> 32"):
        check_conflict(store.root, written, plan(batch_size=32).flag_entries(batch_size_given=True), partial=True)


def test_a_plan_file_this_tool_did_not_write_and_stray_shards_are_refused(tmp_path):
    from trainer import storage
    from trainer.errors import UserError
    from trainer.shard_plan import claim, read_plan

    store = storage.open_store(str(tmp_path / "a"))
    store.put_new("plan.json", b"[1, 2]")
    with pytest.raises(UserError, match="not a plan this tool wrote"):
        read_plan(store)
    other = storage.open_store(str(tmp_path / "b"))
    other.put_new("synthetic-train.tfrecord-00000-of-00003", b"")
    with pytest.raises(UserError, match="holds shards but no plan.json"):
        claim(other, plan(), None)
