"""The evaluation report for people: titled, captioned pictures and one self-contained HTML page.

`dcgan evaluate --report=eval/report.json` writes, beside the JSON:

    report-samples.png            a titled grid of synthetic samples, upscaled
    report-closest-pixels.png     the closest (synthetic | training image) pairs in pixel space,
    report-closest-features.png   ... and in feature space; each pair captioned with its distance
                                  and the memorization threshold (pairs under it are marked)
    report.html                   the numbers, which images each number used, and the pictures
                                  (embedded), readable offline in any browser

    python - <<'PY'
    import numpy as np
    from trainer import report_page
    open('/tmp/s.png', 'wb').write(report_page.samples_png(np.zeros((4, 8, 8, 1), np.uint8), 'demo'))
    PY
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CELL = 96  # small images are upscaled (nearest neighbour) to at least this many pixels
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
ALERT = (190, 20, 20)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _rgb(image: np.ndarray) -> Image.Image:
    """uint8 [H, W, 1|3] -> an RGB PIL image upscaled by an integer factor to at least CELL pixels."""
    factor = max(1, -(-CELL // image.shape[0]))
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
    return picture.resize((image.shape[1] * factor, image.shape[0] * factor), Image.NEAREST)


def _png(picture: Image.Image) -> bytes:
    # zlib's default level, not PIL's optimize=True: a 64-image 64x64x3 grid in 0.18 s instead of 2.3 s,
    # 0.02% larger (the grids are written at the end of every `dcgan train` and in every report)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _canvas_with_title(width: int, body_height: int, title: str, subtitle: str = "") -> tuple[Image.Image, int]:
    """A white canvas with a title band; returns it and the y where the body starts."""
    title_font, small = _font(18), _font(13)
    band = 34 + (20 if subtitle else 0)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max(
        width, int(measure.textlength(title, font=title_font)) + 16, int(measure.textlength(subtitle, font=small)) + 16
    )
    canvas = Image.new("RGB", (width, band + body_height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 8), title, fill=INK, font=title_font)
    if subtitle:
        draw.text((8, 32), subtitle, fill=INK, font=small)
    return canvas, band


def samples_png(images: np.ndarray, title: str, columns: int = 8, row_labels: list[str] | None = None) -> bytes:
    """A titled grid of uint8 images [N, H, W, C], upscaled; `row_labels` are written left of each row."""
    cells = [_rgb(image) for image in images]
    size, gap = cells[0].size[0], 4
    rows = -(-len(cells) // columns)
    left = 90 if row_labels else 0
    width = max(left + columns * (size + gap) + gap, 480)
    canvas, top = _canvas_with_title(width, rows * (size + gap) + gap, title)
    draw, font = ImageDraw.Draw(canvas), _font(14)
    for i, cell in enumerate(cells):
        r, c = divmod(i, columns)
        canvas.paste(cell, (left + gap + c * (size + gap), top + gap + r * (size + gap)))
    for r, label in enumerate(row_labels or []):
        shown = label if len(label) <= 11 else label[:10] + "\u2026"
        position = (6, top + gap + r * (size + gap) + size // 2 - 8)
        try:
            draw.text(position, shown, fill=INK, font=font)
        except UnicodeEncodeError:  # a bitmap font without the name's characters
            draw.text(position, shown.encode("ascii", "backslashreplace").decode(), fill=INK, font=font)
    return _png(canvas)


def pairs_png(
    synthetic: np.ndarray,
    train: np.ndarray,
    distances: np.ndarray,
    nearest_index: np.ndarray,
    threshold: float,
    title: str,
    count: int = 16,
    columns: int = 4,
) -> bytes:
    """The `count` closest (synthetic | nearest training image) pairs, closest first, in a grid.

    Each pair is captioned with its distance and the memorization threshold;
    a pair closer than the threshold (a likely copy) is captioned in red."""
    order = np.argsort(distances)[:count]
    size, gap, caption = _rgb(synthetic[0]).size[0], 12, 36
    pair_width = 2 * size + 4
    rows = -(-len(order) // columns)
    width = columns * (pair_width + gap) + gap
    canvas, top = _canvas_with_title(
        width,
        rows * (size + caption + gap) + gap,
        title,
        f"left: synthetic, right: its nearest training image; memorization threshold {threshold:.1f}",
    )
    draw, font = ImageDraw.Draw(canvas), _font(13)
    for k, i in enumerate(order):
        r, c = divmod(k, columns)
        x, y = gap + c * (pair_width + gap), top + gap + r * (size + caption + gap)
        canvas.paste(_rgb(synthetic[i]), (x, y))
        canvas.paste(_rgb(train[nearest_index[i]]), (x + size + 4, y))
        copy = distances[i] < threshold
        draw.text(
            (x, y + size + 4),
            f"d = {distances[i]:.1f}" + ("  < threshold: copy?" if copy else ""),
            fill=ALERT if copy else INK,
            font=font,
        )
        draw.text((x, y + size + 20), f"threshold {threshold:.1f}", fill=INK, font=font)
    return _png(canvas)


# ----------------------------------------------------------------------------
# The HTML page


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, object, str]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{_fmt(value)}</td><td>{html.escape(note)}</td></tr>"
        for name, value, note in rows
    )
    return f"<table>{body}</table>"


def _caveat(section: dict) -> str:
    text = section.get("caveat", "") if isinstance(section, dict) else ""
    return f'<p class="caveat">&#9888; {html.escape(text)}</p>' if text else ""


def _bars(rows: list[tuple[str, float, float, float]]) -> str:
    """An inline SVG bar chart: (label, mean, low, high) per row, scores 0..1, whiskers for the spread."""
    width, bar_h, label_w = 640, 26, 300
    scale = (width - label_w - 60) / max(1e-9, max(r[3] for r in rows))
    out = [f"<svg width='{width}' height='{bar_h * len(rows) + 8}' role='img'>"]
    for i, (label, mean, low, high) in enumerate(rows):
        y = 4 + i * bar_h
        out.append(f"<text x='0' y='{y + 17}' font-size='13'>{html.escape(label)}</text>")
        out.append(f"<rect x='{label_w}' y='{y + 4}' width='{mean * scale:.1f}' height='{bar_h - 10}' fill='#69c'/>")
        out.append(
            f"<line x1='{label_w + low * scale:.1f}' x2='{label_w + high * scale:.1f}' y1='{y + bar_h / 2}' "
            f"y2='{y + bar_h / 2}' stroke='#222'/>"
        )
        out.append(f"<text x='{label_w + high * scale + 6:.1f}' y='{y + 17}' font-size='12'>{mean:.3f}</text>")
    out.append("</svg>")
    return "".join(out)


def downstream_section(d: dict) -> str:
    """The recipes' scores (a chart and a table), the paired differences, and what was tuned on validation."""
    recipes = d["recipes"]
    rows = [(v["description"], v["mean"], min(v["runs"]), max(v["runs"])) for v in recipes.values()]
    parts = [
        f"<p>{html.escape(d['metric'])} on {d['test_images']} held-out images, {d['seeds']} paired seeds per recipe "
        f"(bars: mean; whiskers: lowest and highest seed). Trained on {d['train_images']} real and "
        f"{d['synthetic_images']} synthetic images.</p>",
        _bars(rows),
        _table(
            [
                (desc, f"{mean:.4f}", f"seeds: {', '.join(f'{r:.3f}' for r in v['runs'])}")
                for (desc, mean, _, _), v in zip(rows, recipes.values())
            ]
        ),  # fmt: skip
    ]
    gain, over = d["gain_over_augmentation"], d["augmentation_over_real"]
    differences = [
        ("real + synthetic vs the tuned augmentation", gain),
        ("tuned augmentation vs real images only", over),
    ]
    parts.append(
        _table(
            [
                (
                    name,
                    f"{100 * i['mean']:+.1f} points",
                    f"95% interval [{100 * i['low']:+.1f}, {100 * i['high']:+.1f}]",
                )
                for name, i in differences
            ]
        )
    )
    tuned = d["tuned"]
    parts.append(
        f"<p>CAS ratio (synthetic only / tuned augmentation): {d['cas_ratio']:.2f}. Chosen on "
        + html.escape(tuned.get("validation", f"a validation split of {tuned['validation_images']} training images"))
        + f", never on the test images: augmentation "
        f"<b>{html.escape(tuned['augmentation'])}</b>, synthetic share {tuned['synthetic_share']}"
        + (f" (real images: {tuned['synthetic_balance']})" if tuned.get("synthetic_balance", "none") != "none" else "")
        + ".</p>"
    )
    scores, tie_breaks = tuned["validation_scores"], tuned.get("validation_log_likelihood", {})
    parts.append(
        _table(
            [
                (
                    f"validation: {kind} {name}",
                    f"{value:.4f}",
                    f"log-likelihood {tie_breaks[kind][name]:.3f} (breaks ties)"
                    if name in tie_breaks.get(kind, {})
                    else "",
                )
                for kind in ("policies", "mixes", "balances", "shares")
                for name, value in scores.get(kind, {}).items()
            ]
        )  # fmt: skip
    )
    return "\n".join(parts)


def page(report: dict, pictures: dict[str, bytes]) -> str:
    """One self-contained HTML page: numbers, the images each number used, and the pictures embedded."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dcgan evaluate report</title><style>",
        "body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}th{background:#f4f4f4}.caveat{color:#a00;font-weight:bold}"
        "img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}",
        ".verdict{font-size:1.2em;padding:.5em;background:#f4f8ff;border-left:4px solid #36c}",
        "</style></head><body><h1>dcgan evaluate report</h1>",
    ]
    verdict = report.get("downstream", {}).get("verdict")
    if verdict:
        parts.append(f'<p class="verdict" id="verdict">{html.escape(verdict)}</p>')
    data = report.get("data", {})
    parts.append("<h2>Which images each number used</h2>")
    parts.append(
        _table(
            [
                (role, f"{info.get('images', '?')} images", info.get("name", ""))
                for role, info in data.get("sets", {}).items()
            ]
        )
    )
    overlaps = data.get("overlaps", [])
    if overlaps:
        parts.append(
            _table(
                [
                    (
                        f"{o['a']} vs {o['b']}",
                        "disjoint" if o["disjoint"] else f"{o['shared']} shared",
                        o.get("meaning", ""),
                    )
                    for o in overlaps
                ]
            )
        )
    for text in report.get("data", {}).get("warnings", []):
        parts.append(f'<p class="caveat">&#9888; {html.escape(text)}</p>')

    fidelity = report.get("fidelity", {})
    parts.append("<h2>Fidelity and diversity</h2>" + _caveat(fidelity))
    parts.append(_table([(k, v, "") for k, v in fidelity.items() if k != "caveat"]))
    memorization = report.get("memorization", {})
    parts.append("<h2>Memorization</h2>" + _caveat(memorization))
    if "skipped" in memorization:
        parts.append(f"<p>{html.escape(memorization['skipped'])}</p>")
    else:
        rows = [("rate (pixels or features)", memorization.get("rate_either", ""), "share of samples flagged")]
        for space in ("pixels", "features"):
            if space in memorization:
                m = memorization[space]
                rows.append(
                    (
                        f"{space}: rate",
                        m["rate"],
                        f"threshold {m['threshold']:.4g} ({m['quantile']:.0%} quantile of held-out distances)",
                    )
                )
        parts.append(_table(rows))
    gan_test = report.get("gan_test", {})
    parts.append("<h2>GAN-test</h2>" + _caveat(gan_test))
    parts.append(_table([(k, v, "") for k, v in gan_test.items() if k != "caveat"]))
    downstream = report.get("downstream", {})
    parts.append("<h2>Downstream: does a classifier gain from the synthetic images?</h2>" + _caveat(downstream))
    if "skipped" in downstream:
        parts.append(f"<p>{html.escape(downstream['skipped'])}</p>")
    elif "recipes" in downstream:
        parts.append(downstream_section(downstream))
    for name, png in pictures.items():
        encoded = base64.b64encode(png).decode()
        parts.append(
            f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{encoded}'>"
        )
    version = report.get("version")
    parts.append(f"<footer><p>dcgan-factory {html.escape(str(version))}</p></footer>" if version else "")
    parts.append("</body></html>")
    return "\n".join(parts)
