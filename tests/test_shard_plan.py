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
