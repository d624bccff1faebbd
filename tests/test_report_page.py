"""The report's pictures and HTML page (trainer/report_page.py)."""

import io

import numpy as np
from PIL import Image

from trainer import data, metrics, report_page


def test_closest_pairs_are_upscaled_captioned_and_show_the_copy_beside_its_original():
    train = data.load_source("digits:train[:20%]", 32)
    holdout = data.load_source("digits:test", 32)
    synthetic = np.concatenate([train.images[:4], holdout.images[:60]])
    result = metrics.memorization(train.images, holdout.images[60:], synthetic, quantile=0.01)
    png = report_page.pairs_png(
        synthetic,
        train.images,
        result["distances"],
        result["nearest_index"],
        result["threshold"],
        "title",
        count=8,
        columns=4,
    )
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    size = 96  # 32 px upscaled 3x
    assert picture.shape[1] == 4 * (2 * size + 4 + 12) + 12 and picture.shape[0] > 2 * size + 54
    top, left = 54 + 12, 12  # title band, gap
    synthetic_cell = picture[top : top + size, left : left + size]
    original_cell = picture[top : top + size, left + size + 4 : left + 2 * size + 4]
    np.testing.assert_array_equal(synthetic_cell, original_cell)  # the closest pair: a copy beside its original
    caption = picture[top + size + 4 : top + size + 18, left : left + 2 * size]
    assert (caption[..., 0].astype(int) - caption[..., 1] > 100).any()  # red: under the threshold


def test_the_page_is_self_contained_and_escapes_names():
    report = {
        "data": {
            "sets": {"reference": {"name": "<script>x</script>", "images": 3}},
            "overlaps": [],
            "warnings": ["overlap NOT checked <b>"],
        },
        "fidelity": {"fid": 1.5, "caveat": "shared images"},
        "memorization": {"skipped": "no training set"},
        "gan_test": {},
        "downstream": {"skipped": "no labels"},
        "version": "9.8.7<",
    }
    page = report_page.page(
        report, {"Synthetic samples": report_page.samples_png(np.zeros((2, 8, 8, 1), np.uint8), "t")}
    )
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page
    assert "shared images" in page and "data:image/png;base64," in page and "http" not in page
    assert "dcgan-factory 9.8.7&lt;" in page  # which version wrote it
    assert "overlap NOT checked &lt;b&gt;" in page  # data warnings are shown (they were read from a key never set)


def test_the_validation_table_shows_the_tie_break_beside_each_score():
    interval = {"mean": 0.01, "low": -0.01, "high": 0.03, "n": 2}
    recipe = {"description": "real images only", "mean": 0.5, "runs": [0.4, 0.6]}
    section = {
        "metric": "accuracy", "test_images": 10, "seeds": 2, "train_images": 5, "synthetic_images": 5,
        "recipes": {"real": recipe}, "gain_over_augmentation": interval, "augmentation_over_real": interval,
        "cas_ratio": 0.5,
        "tuned": {
            "validation_images": 18, "augmentation": "TrivialAugment", "synthetic_share": 0.5,
            "validation_scores": {"shares": {"0.25": 1.0, "0.5": 1.0}},
            "validation_log_likelihood": {"shares": {"0.25": -0.41, "0.5": -0.2}},
        },
    }  # fmt: skip
    html_text = report_page.downstream_section(section)
    assert "validation: shares 0.5</th><td>1.0000</td><td>log-likelihood -0.200 (breaks ties)" in html_text
    del section["tuned"]["validation_log_likelihood"]  # a report written before the tie-break
    assert "validation: shares 0.25</th><td>1.0000</td><td></td>" in report_page.downstream_section(section)
