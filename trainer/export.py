"""The exported generator: JOB_DIR/export/generator.keras + generator.json (names: trainer/jobdir.py).

The .keras file is G_ema in float32, a plain Keras functional model made of
built-in layers only, for every generator option: `keras.models.load_model(path)`
loads it with nothing but Keras installed, in a process that never imported
this package (`builtin_layers_only` rewrites the one custom layer a generator can
have, ConditionalBatchNorm, into BatchNormalization, two Embeddings, Multiply and
Add; --class_fade_in's label strength is folded into the label embedding;
tests/test_export.py loads every option's export that way). Call it as
`g(z)` or, when conditional, `g([z, labels])`; it returns float32 images in [-1, 1].

    python -c "from trainer import export; g, meta = export.load('runs/digits'); print(meta)"
"""

from __future__ import annotations

import json
import os
import tempfile

import keras

from trainer import __version__, jobdir, models, storage
from trainer.errors import UserError


def save(
    store: storage.Store,
    generator_ema: keras.Model,
    plan,
    step: int,
    folder: str = jobdir.EXPORT,
    extra: dict | None = None,
) -> None:
    """Writes a float32 copy of G_ema and its description, each atomically, to FOLDER/generator.{keras,json}.

    `plan` is the run's TrainPlan (sizes, classes and their names: label i is class_names[i])."""
    config = plan.config
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        plain = models.build_generator(
            config.resolution,
            plan.channels,
            config.latent_dim,
            config.width,
            plan.num_classes,
            name="generator_ema",
            conditioning=config.g_conditioning,
        )
    finally:
        keras.mixed_precision.set_global_policy(policy)
    _copy_weights(generator_ema, plain)
    plain = builtin_layers_only(plain)
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, jobdir.MODEL_FILE)
        plain.save(local)
        with open(local, "rb") as f:
            store.put(f"{folder}/{jobdir.MODEL_FILE}", f.read())
    meta = {
        "latent_dim": config.latent_dim,
        "resolution": config.resolution,
        "channels": plan.channels,
        "num_classes": plan.num_classes,
        "conditional": bool(plan.num_classes),
        "class_names": list(plan.class_names),
        "class_counts": list(plan.class_counts),
        "step": step,
        "version": __version__,
        "config_hash": config.identity_hash(),
        "dataset": config.dataset,
        "num_train_images": plan.dataset_images,
        "output_range": [-1.0, 1.0],
        **(extra or {}),
    }
    store.put(f"{folder}/{jobdir.META_FILE}", (json.dumps(meta, indent=2) + "\n").encode())


def _copy_weights(trained: keras.Model, plain: keras.Model) -> None:
    """G_ema's weights into the export's layers, by layer name. --class_fade_in's label strength has no
    layer in the export: it is folded into the label embedding's table (strength * embed(y))."""
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights([keras.ops.convert_to_numpy(w) for w in trained.get_layer(layer.name).weights])
    strengths = [layer for layer in trained.layers if isinstance(layer, models.ConditionStrength)]
    if strengths:
        table = plain.get_layer("label_embedding")
        strength = float(keras.ops.convert_to_numpy(strengths[0].strength))
        table.set_weights([table.get_weights()[0] * strength])


def builtin_layers_only(model: keras.Model) -> keras.Model:
    """The same float32 generator with every ConditionalBatchNorm replaced by built-in layers, same weights.

    BN(h) * gamma[y] + beta[y] becomes BatchNormalization(center=False, scale=False) on h, and two
    Embedding(classes, channels) lookups of y reshaped to [B, 1, 1, C], joined by Multiply and Add:
    the computation and the weights are the same, and loading needs no custom class."""
    if not any(isinstance(layer, models.ConditionalBatchNorm) for layer in model.layers):
        return model

    def call(clone, *args, **kwargs):
        if not isinstance(clone, models.ConditionalBatchNorm):
            return clone(*args, **kwargs)
        layer = model.get_layer(clone.name)  # the trained original (a clone starts unbuilt)
        (h, label), channels = args[0], layer.gamma.shape[-1]
        norm = keras.layers.BatchNormalization(
            momentum=layer.momentum, epsilon=layer.epsilon, center=False, scale=False, name=f"{layer.name}_norm"
        )
        gamma, beta = (
            keras.layers.Embedding(layer.num_classes, channels, name=f"{layer.name}_{part}")
            for part in ("gamma", "beta")
        )
        normed = norm(h)
        norm.set_weights(layer.norm.get_weights())
        per_class = []
        for table, source in ((gamma, layer.gamma), (beta, layer.beta)):
            looked_up = keras.layers.Reshape((1, 1, channels), name=f"{table.name}_4d")(table(label))
            table.set_weights([keras.ops.convert_to_numpy(source)])
            per_class.append(looked_up)
        scaled = keras.layers.Multiply(name=f"{layer.name}_scale")([normed, per_class[0]])
        return keras.layers.Add(name=layer.name)([scaled, per_class[1]])

    plain = keras.models.clone_model(model, call_function=call)
    for layer in model.layers:  # clones start from fresh weights
        if not isinstance(layer, models.ConditionalBatchNorm) and layer.weights:
            plain.get_layer(layer.name).set_weights(layer.get_weights())
    return plain


def resolve_path(path: str) -> str:
    """A job dir, an export dir, or the .keras file itself -> the local .keras path.

    A gs:// job or export dir is downloaded (checksummed) into the local cache first."""
    if storage.is_remote(path):
        path = _stage(path)
    for candidate in (path, os.path.join(path, jobdir.MODEL_FILE), os.path.join(path, *jobdir.EXPORT_MODEL.split("/"))):
        if candidate.endswith(".keras") and os.path.isfile(candidate):
            return candidate
    raise UserError(
        f"--generator={path}: no exported generator there (expected JOB_DIR/{jobdir.EXPORT_MODEL}; "
        "did the training job finish?)"
    )


def _stage(url: str) -> str:
    """Downloads a bucket's exported generator (.keras + .json) and returns the local folder holding them."""
    url = url.removesuffix(f"/{jobdir.MODEL_FILE}")
    store = storage.open_store(url, staging=storage.cache_for("generators", url))
    for folder in (f"{jobdir.EXPORT}/", ""):  # a job dir, or the export dir itself
        if store.exists(f"{folder}{jobdir.MODEL_FILE}"):
            for name in (jobdir.MODEL_FILE, jobdir.META_FILE):
                if store.exists(folder + name):
                    store.fetch(folder + name)
            return store.local(folder.rstrip("/"))
    raise UserError(
        f"--generator={url}: no exported generator there (expected JOB_DIR/{jobdir.EXPORT_MODEL}; "
        "did the training job finish?)"
    )


# generator.json's fields that sampling reads, and the smallest value each may take
_META_INTEGERS = {"latent_dim": 1, "resolution": 1, "channels": 1, "num_classes": 0, "step": 0}


def read_meta(meta_path: str) -> dict:
    """generator.json, checked: a JSON object whose sizes are non-negative integers (UserError otherwise)."""
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise UserError(f"{meta_path}: unreadable ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: a JSON object was expected, not {type(meta).__name__}")
    for key, least in _META_INTEGERS.items():
        value = meta.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UserError(f"{meta_path}: {key!r} must be an integer >= {least}, not {str(value)[:40]!r}")
    if not isinstance(meta.get("dataset", ""), str):
        raise UserError(f"{meta_path}: 'dataset' must be a string")
    return meta


def load(path: str) -> tuple[keras.Model, dict]:
    model_path = resolve_path(path)  # stages a gs:// generator locally
    meta_path = os.path.join(os.path.dirname(model_path), jobdir.META_FILE)
    if not os.path.isfile(meta_path):
        raise UserError(f"{model_path}: {jobdir.META_FILE} is missing beside it")
    meta = read_meta(meta_path)
    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as err:  # keras raises many types for a damaged file
        raise UserError(f"{model_path}: cannot load the generator ({type(err).__name__}: {str(err)[:160]})") from None
    return model, meta


def with_precision(model: keras.Model, precision: str) -> keras.Model:
    """The same generator computing in float16 or bfloat16 (weights stay float32; 'off' returns it as is).

    For sampling: bfloat16 is the fast mode on CPUs with BF16 and on TPUs,
    float16 on GPUs. Pixels may differ from float32 by about one grey level."""
    if precision == "off":
        return model

    def convert(layer):
        config = layer.get_config()
        if not isinstance(layer, keras.layers.InputLayer):
            config["dtype"] = f"mixed_{precision}"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=convert)
    clone.set_weights(model.get_weights())
    return clone
