"""ImageDataGenerator's augmentation arguments as one frozen, validated object.

The single definition of the classic augmentation parameters: `dcgan sample`
and `dcgan augment` take them as flags (the shard jobs' config fields are
checked against these at import), trainer/classic_augment.py applies them.

    python - <<'PY'
    from trainer.augment_params import AugmentParams
    print(AugmentParams.create(rotation_range=15).describe())
    PY
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from trainer.errors import UserError

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """ImageDataGenerator's augmentation arguments, same names, same units."""

    rotation_range: float = 0.0  # degrees, U(-r, r)
    width_shift_range: float = 0.0  # < 1: fraction of width; >= 1: pixels
    height_shift_range: float = 0.0
    shear_range: float = 0.0  # degrees
    zoom_range: tuple[float, float] = (1.0, 1.0)  # a float z means [1 - z, 1 + z]
    horizontal_flip: bool = False
    vertical_flip: bool = False
    fill_mode: str = "nearest"
    cval: float = 0.0
    brightness_range: Optional[tuple[float, float]] = None
    channel_shift_range: float = 0.0

    @classmethod
    def create(cls, **kwargs) -> "AugmentParams":
        """Builds params from user values, normalising zoom and checking each value."""
        unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UserError(f"unknown augmentation argument(s): {', '.join(unknown)}")
        zoom = kwargs.get("zoom_range", 0.0)
        if isinstance(zoom, (int, float)):
            zoom = (1.0 - zoom, 1.0 + zoom)
        kwargs["zoom_range"] = tuple(float(z) for z in zoom)
        if kwargs.get("brightness_range") is not None:
            kwargs["brightness_range"] = tuple(float(b) for b in kwargs["brightness_range"])
        params = cls(**kwargs)
        params.validate()
        return params

    def validate(self) -> None:
        errors = []
        for name in ("rotation_range", "width_shift_range", "height_shift_range", "shear_range", "channel_shift_range"):
            if getattr(self, name) < 0:
                errors.append(f"--{name}={getattr(self, name)} must be >= 0")
        if len(self.zoom_range) != 2 or not 0 < self.zoom_range[0] <= self.zoom_range[1]:
            errors.append(f"--zoom_range={self.zoom_range} must be a float in [0, 1) or a pair 0 < lo <= hi")
        if self.fill_mode not in FILL_MODES:
            errors.append(f"--fill_mode={self.fill_mode!r} must be one of {list(FILL_MODES)}")
        if self.brightness_range is not None and (
            len(self.brightness_range) != 2 or not 0 <= self.brightness_range[0] <= self.brightness_range[1]
        ):
            errors.append(f"--brightness_range={self.brightness_range} must be a pair 0 <= lo <= hi")
        if errors:
            raise UserError("; ".join(errors))

    @property
    def is_identity(self) -> bool:
        return self == AugmentParams(fill_mode=self.fill_mode, cval=self.cval)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        changed = {k: v for k, v in self.to_dict().items() if v != getattr(AugmentParams(), k)}
        return ", ".join(f"{k}={v}" for k, v in changed.items()) or "none"
