"""The model card beside an exported generator: EXPORT/README.md (and samples.png).

`dcgan train` writes it with the export: what the generator was trained on (dataset,
number of images, classes), for how many steps, its best KID while training, a
sample grid and how to use it. `dcgan evaluate` adds what it measured (FID/KID,
precision/recall, memorization, GAN-test, downstream accuracy) by saving
EXPORT/evaluation.json and writing the card again; the card is always rendered
from generator.json and evaluation.json, never edited in place.

    python -c "from trainer import model_card; print(model_card.render({'step': 10, 'dataset': 'digits'}))"
"""

from __future__ import annotations

import json
from typing import Optional

from trainer import jobdir, storage
from trainer.errors import JobError

CARD, SAMPLES, EVALUATION = jobdir.CARD_FILE, jobdir.CARD_SAMPLES_FILE, jobdir.EVALUATION_FILE


def _percent(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "-"


def _number(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def render(
    meta: dict, evaluation: Optional[dict] = None, best: Optional[dict] = None, has_samples: bool = False
) -> str:
    """The card's Markdown from the export's generator.json (and its evaluation, and export/best's json)."""
    names = [str(n).replace("|", "\\|").replace("`", "'") for n in meta.get("class_names") or []]  # table-safe
    classes = (
        f"{len(names)}: " + ", ".join(f"`{n}`" for n in names[:50]) + (" ..." if len(names) > 50 else "")
        if names
        else (str(meta.get("num_classes")) if meta.get("num_classes") else "unconditional")
    )
    size = f"{meta.get('resolution', '?')}x{meta.get('resolution', '?')}x{meta.get('channels', '?')}"
    lines = [
        "# Generator card",
        "",
        f"A DCGAN generator trained with dcgan-factory {meta.get('version', '')}".rstrip() + ".",
        "",
        "| | |",
        "|---|---|",
        f"| training data | `{meta.get('dataset', '?')}`"
        + (f", {meta['num_train_images']} images" if meta.get("num_train_images") else "")
        + " |",
        f"| images | {size}, pixels in [-1, 1] |",
        f"| classes | {classes} |",
        f"| training steps | {meta.get('step', '?')} |",
        f"| latent size | {meta.get('latent_dim', '?')} |",
    ]
    if best:
        lines.append(
            f"| best KID while training | {_number(best.get('kid'))} at step {best.get('step')} "
            "(vs the training images; that generator is in `best/`) |"
        )
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "dcgan sample --generator=THIS_FOLDER --output=out/synth --num_images=100000"
        + (" --labels=balanced" if names else ""),
        "```",
        "",
        "```python",
        "import keras, numpy as np",
        'g = keras.models.load_model("generator.keras")',
        f'z = np.random.normal(size=(16, {meta.get("latent_dim", 100)})).astype("float32")',
        f"images = g.predict([z, np.arange(16) % {len(names)}])  # in [-1, 1]"
        if names
        else "images = g.predict(z)  # in [-1, 1]",
        "```",
        "",
    ]
    if has_samples:
        lines += ["## Samples", "", f"![samples from this generator]({SAMPLES})", ""]
    lines += ["## Evaluation", ""]
    if not evaluation:
        lines += [
            "Not evaluated yet. Measure fidelity, memorization and downstream usefulness with:",
            "",
            "```bash",
            "dcgan evaluate --synthetic=THIS_FOLDER --real=HELD_OUT_DATA --train_data="
            + str(meta.get("dataset", "TRAINING_DATA")),
            "```",
        ]
    else:
        fidelity = evaluation.get("fidelity", {})
        memorization = evaluation.get("memorization", {})
        gan_test = evaluation.get("gan_test", {})
        lines += [
            f"Measured by `dcgan evaluate` against `{evaluation.get('real', '?')}` "
            f"({evaluation.get('real_images', '?')} images); report: `{evaluation.get('report', '')}`.",
            "",
            "| metric | value |",
            "|---|---|",
            f"| FID / KID ({evaluation.get('feature_space', '')} features) | {_number(fidelity.get('fid'), 2)} / "
            f"{_number(fidelity.get('kid'))} |",
            f"| precision / recall | {_number(fidelity.get('precision'), 3)} / {_number(fidelity.get('recall'), 3)} |",
            f"| memorization (pixels or features) | {_percent(memorization.get('rate_either'))} |",
            f"| GAN-test accuracy | {_percent(gan_test.get('accuracy'))} |",
        ]
        if gan_test.get("normalised") is not None:
            lines.append(f"| GAN-test, normalised by real images | {_number(gan_test['normalised'], 2)} |")
        downstream = evaluation.get("downstream") or {}
        for result in (downstream.get("recipes") or {}).values():
            lines.append(f"| downstream: {result['description']} | {_percent(result['mean'])} |")
        if downstream.get("cas_ratio") is not None:
            lines.append(f"| CAS ratio (synthetic only / tuned augmentation) | {_number(downstream['cas_ratio'], 2)} |")
        if downstream.get("verdict"):
            lines += ["", f"Downstream verdict: {downstream['verdict']}."]
        if evaluation.get("caveats"):
            lines += ["", "Caveat: " + "; ".join(evaluation["caveats"])]
    return "\n".join(lines) + "\n"


def write(store: storage.Store, prefix: str = f"{jobdir.EXPORT}/", samples_png: Optional[bytes] = None) -> None:
    """(Re)writes PREFIX/README.md from generator.json, evaluation.json and best/ there (and samples.png if given).

    `prefix` is the export folder's key prefix in `store`, with its trailing '/' ('' for the store's root)."""
    meta = json.loads(store.get_text(f"{prefix}{jobdir.META_FILE}"))
    evaluation = json.loads(store.get_text(f"{prefix}{EVALUATION}")) if store.exists(f"{prefix}{EVALUATION}") else None
    best_meta = f"{prefix}best/{jobdir.META_FILE}"
    best = json.loads(store.get_text(best_meta)) if store.exists(best_meta) else None
    if samples_png is not None:
        store.put(f"{prefix}{SAMPLES}", samples_png)
    store.put(f"{prefix}{CARD}", render(meta, evaluation, best, store.exists(f"{prefix}{SAMPLES}")).encode())


def record_evaluation(generator: str, report: dict, report_path: str, real_images: int) -> Optional[str]:
    """Saves what `dcgan evaluate` measured beside the generator and rewrites its card; returns the card's
    location, or None when `generator` is not an export folder this process can write to."""
    folder_url = generator.rstrip("/")
    if folder_url.endswith(".keras"):  # the model file itself: its folder
        folder_url = folder_url.rsplit("/", 1)[0] if "/" in folder_url else "."
    store = storage.open_store(folder_url)
    prefix = f"{jobdir.EXPORT}/" if store.exists(jobdir.EXPORT_META) else ""
    if not store.exists(f"{prefix}{jobdir.META_FILE}"):
        return None
    summary = {
        "real": report.get("config", {}).get("real"),
        "report": report_path,
        "real_images": real_images,
        "feature_space": report.get("features", {}).get("kind", ""),
        "fidelity": report.get("fidelity", {}),
        "memorization": {"rate_either": report.get("memorization", {}).get("rate_either")},
        "gan_test": {k: report.get("gan_test", {}).get(k) for k in ("accuracy", "normalised")},
        "downstream": {
            k: v for k, v in (report.get("downstream") or {}).items() if k in ("verdict", "recipes", "cas_ratio")
        },
        "caveats": sorted({v["caveat"] for v in report.values() if isinstance(v, dict) and v.get("caveat")}),
    }
    try:
        store.put(f"{prefix}{EVALUATION}", (json.dumps(summary, indent=2) + "\n").encode())
        write(store, prefix)
    except (OSError, JobError, ValueError, TypeError, AttributeError, RecursionError) as err:  # hostile JSON there
        print(f"warning: could not update the model card in {folder_url}: {err}")
        return None
    return f"{store.url}/{prefix}{CARD}"
