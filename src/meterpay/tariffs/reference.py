"""Published residential tariffs (``reference/tariffs.md``) as tariff data.

For the demo site, the documentation and the tests that check the reference
amounts; a real site defines its own through the API or a tariff file. Each
is the ``TariffComponents.to_dict()`` form.
"""

from __future__ import annotations

from typing import Any

# 北京居民 一户一表: 0.4883 元/kWh; tiers at 2880 and 4800 kWh a year (+0.05, +0.30).
BEIJING_POWER: dict[str, Any] = {
    "energy": {"unit_price": "0.4883"},
    "tiers": {
        "cycle": "yearly",
        "steps": [
            {"up_to": "2880", "markup": "0"},
            {"up_to": "4800", "markup": "0.05"},
            {"up_to": None, "markup": "0.30"},
        ],
    },
}

# 北京自来水: 水费 2.07 / 4.07 / 6.07 at 180 and 260 m³ a year, plus 水资源费 1.57 and
# 污水处理费 1.36 per m³ (5 / 7 / 9 元 in all).
BEIJING_WATER: dict[str, Any] = {
    "energy": {"unit_price": "2.07"},
    "tiers": {
        "cycle": "yearly",
        "steps": [
            {"up_to": "180", "markup": "0"},
            {"up_to": "260", "markup": "2"},
            {"up_to": None, "markup": "4"},
        ],
    },
    "surcharges": [
        {
            "code": "water_resource",
            "name": "水资源费",
            "unit_price": "1.57",
            "government_levy": True,
        },
        {"code": "sewage", "name": "污水处理费", "unit_price": "1.36", "government_levy": True},
    ],
}

# 上海居民峰谷: peak 06-22 0.617, valley 22-06 0.307; tier 1 up to 3120 kWh a year (tiers 2
# and 3 are not verified: the national mark-ups stand in for them).
SHANGHAI_TOU: dict[str, Any] = {
    "energy": {"unit_price": "0.617"},
    "tiers": {
        "cycle": "yearly",
        "steps": [
            {"up_to": "3120", "markup": "0"},
            {"up_to": "4800", "markup": "0.05"},
            {"up_to": None, "markup": "0.30"},
        ],
    },
    "time_of_use": {
        "prices": {"peak": {"price": "0.617"}, "valley": {"price": "0.307"}},
        "schedules": [
            {
                "windows": [
                    {"period": "peak", "start": "06:00", "end": "22:00"},
                    {"period": "valley", "start": "22:00", "end": "06:00"},
                ]
            }
        ],
    },
}
