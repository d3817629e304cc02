"""The demo home: which devices stand in which rooms. Hungarian names, as a MicroPi household's are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DOMAIN: Final = "micropi_demo"
MANUFACTURER: Final = "MicroPi (demó)"  # shown on every device page: these are not real devices
MODEL: Final = "Demó eszköz"
ENTRY_TITLE: Final = "Demó otthon"
CONF_EXPOSED: Final = "exposed"  # set once the devices were exposed to Assist (a later choice is kept)
CONF_AREAS_MADE: Final = "areas_made"  # ids of the rooms the demo made (onboarding makes some of the same)


@dataclass(frozen=True, slots=True)
class DemoDevice:
    key: str  # the device's and entity's unique id, and the entity's object id (light.nappali_lampa)
    platform: str
    name: str
    area: str


DEVICES: Final = (
    DemoDevice("nappali_lampa", "light", "Nappali lámpa", "Nappali"),
    DemoDevice("haloszoba_lampa", "light", "Hálószoba lámpa", "Hálószoba"),
    DemoDevice("konyha_lampa", "light", "Konyhai lámpa", "Konyha"),
    DemoDevice("termosztat", "climate", "Termosztát", "Nappali"),
    DemoDevice("nappali_redony", "cover", "Nappali redőny", "Nappali"),
    DemoDevice("bejarati_ajto", "lock", "Bejárati ajtó", "Előszoba"),
    DemoDevice("kavefozo", "switch", "Kávéfőző", "Konyha"),
    DemoDevice("nappali_teve", "media_player", "Nappali tévé", "Nappali"),
    DemoDevice("haloszoba_homero", "sensor", "Hálószoba hőmérő", "Hálószoba"),
)
AREAS: Final = tuple(dict.fromkeys(device.area for device in DEVICES))
PLATFORMS: Final = sorted({device.platform for device in DEVICES})
