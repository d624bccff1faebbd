"""An output's manifest.json, parsed as hostile input, and the TFDS metadata written beside it.

python -c "from trainer.shards import manifest; help(manifest.parse_manifest)"
"""

from __future__ import annotations

import json
import re

from trainer.errors import UserError
from trainer.shard_plan import ShardPlan
from trainer.shards.records import FEATURES


def tfds_metadata(
    name: str, shard_lengths: list[int], num_bytes: int, description: str, plan: ShardPlan
) -> dict[str, bytes]:
    """features.json, dataset_info.json and the class names, so that
    `tfds.builder_from_directory(OUTPUT).as_dataset(split="train", as_supervised=True)` yields
    decoded (image, label) pairs, and `info.features["image/class/label"].names` the class names.

    Features keep the records' flat keys ('image/encoded', 'image/class/label', ...), so the
    records need no change: the image is a TFDS Image (PNG or JPEG shards) or a uint8 Tensor
    stored as bytes (raw shards), the label a ClassLabel when the images have classes. Written
    without importing tensorflow_datasets; tested against it."""
    res, channels, num_classes, image_format = plan.resolution, plan.channels, plan.num_classes, plan.image_format
    shape = {"dimensions": [str(res), str(res), str(channels)]}

    def tensor(dtype, dims=()):
        return {
            "pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
            "tensor": {
                "dtype": dtype,
                "encoding": "none",
                "shape": {"dimensions": [str(d) for d in dims]} if dims else {},
            },
        }

    features = {key: tensor(spec.dtype.name) for key, spec in FEATURES.items()}
    if image_format == "raw":
        features["image/encoded"] = {
            "pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
            "tensor": {"dtype": "uint8", "encoding": "bytes", "shape": shape},
        }
    else:
        features["image/encoded"] = {
            "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
            "image": {"dtype": "uint8", "encodingFormat": image_format, "shape": shape},
        }
    files = {}
    if num_classes:
        features["image/class/label"] = {
            "pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel",
            "classLabel": {"numClasses": str(num_classes)},
        }
        names = list(plan.class_names) or [str(c) for c in range(num_classes)]
        files["image.class.label.labels.txt"] = ("\n".join(names) + "\n").encode()
    if plan.soft_labels:
        features["image/class/probs"] = tensor("float32", (num_classes,))
        features["image/teacher/confidence"] = tensor("float32")
    feature_json = {
        "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
        "featuresDict": {"features": dict(sorted(features.items()))},
    }
    info = {
        "name": name,
        "version": "1.0.0",
        "fileFormat": "tfrecord",
        "moduleName": "dcgan_factory",
        "description": description,
        "splits": [
            {
                "name": "train",
                "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                "numBytes": str(num_bytes),
                "shardLengths": [str(n) for n in shard_lengths],
            }
        ],
    }
    if num_classes:
        info["supervisedKeys"] = {
            "tuple": {"items": [{"featureKey": "image/encoded"}, {"featureKey": "image/class/label"}]}
        }
    return {
        "features.json": (json.dumps(feature_json, indent=2) + "\n").encode(),
        "dataset_info.json": (json.dumps(info, indent=2) + "\n").encode(),
        **files,
    }


MAX_MANIFEST_BYTES = 64 << 20  # far above any real manifest (about 200 bytes a shard)


def check_shard_name(name, where: str) -> str:
    """A manifest's shard name, refused unless it is a plain file name in the output folder (the streaming
    path's rule, applied on every path: no '/', '\\', NUL, '', '.' or '..')."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise UserError(f"{where}: shard name {str(name)[:200]!r} is not a file in the folder")
    return name


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(entry, where: str) -> str:
    """One "shards" entry: a safe name, whole-number bytes and num_images, a 64-hex-digit sha256; its name."""
    if not isinstance(entry, dict) or "name" not in entry:
        raise UserError(f"{where}: a shard entry without a name: {str(entry)[:100]!r}")
    name = check_shard_name(entry["name"], where)
    for key in ("bytes", "num_images"):
        if key in entry and not _is_count(entry[key]):
            raise UserError(f"{where}: shard {name!r}: {key}={json.dumps(entry[key])[:40]} is not a whole number")
    sha = entry.get("sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha)):
        raise UserError(f"{where}: shard {name!r}: sha256={str(sha)[:80]!r} is not 64 hex digits")
    return name


def parse_manifest(blob, where: str) -> dict:
    """manifest.json's text (or bytes) -> its dict, every field a reader relies on checked (UserError if not):
    a "shards" list of entries with a safe name, whole-number bytes and num_images, a 64-hex-digit sha256;
    channels 1 or 3; whole-number num_images, num_classes and resolution."""
    try:
        manifest = json.loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{where}: not JSON ({str(err)[:200]})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{where}: not a JSON object")
    entries = manifest.get("shards")
    if not isinstance(entries, list):
        raise UserError(f'{where}: no "shards" list, so it is not a dcgan-factory shard manifest')
    names = set()
    for entry in entries:
        name = _check_entry(entry, where)
        if name in names:
            raise UserError(f"{where}: shard {name!r} is listed twice")
        names.add(name)
    if "channels" in manifest and manifest["channels"] not in (1, 3):
        raise UserError(f"{where}: channels={json.dumps(manifest['channels'])[:40]} must be 1 or 3")
    for key in ("num_images", "num_classes", "resolution"):
        if key in manifest and manifest[key] is not None and not _is_count(manifest[key]):
            raise UserError(f"{where}: {key}={json.dumps(manifest[key])[:40]} is not a whole number")
    return manifest
