"""Build data/regions/boundaries.geojson from the Natural Earth extract (run once, by hand).

    python scripts/build_regions.py ../shared/data/regions/natural-earth-admin1-ua-ru-border.geojson

Gives each region a URL-safe slug and a present-day English name (the Natural Earth names are
older transliterations such as "Kiev" or "Donets'k"); keeps the geometry exactly as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Natural Earth name -> (slug, name used by the service)
NAMES = {
    "Belgorod": ("belgorod", "Belgorod Oblast"),
    "Bryansk": ("bryansk", "Bryansk Oblast"),
    "Kursk": ("kursk", "Kursk Oblast"),
    "Cherkasy": ("cherkasy", "Cherkasy Oblast"),
    "Chernihiv": ("chernihiv", "Chernihiv Oblast"),
    "Chernivtsi": ("chernivtsi", "Chernivtsi Oblast"),
    "Dnipropetrovs'k": ("dnipropetrovsk", "Dnipropetrovsk Oblast"),
    "Donets'k": ("donetsk", "Donetsk Oblast"),
    "Ivano-Frankivs'k": ("ivano-frankivsk", "Ivano-Frankivsk Oblast"),
    "Kharkiv": ("kharkiv", "Kharkiv Oblast"),
    "Kherson": ("kherson", "Kherson Oblast"),
    "Khmel'nyts'kyy": ("khmelnytskyi", "Khmelnytskyi Oblast"),
    "Kiev": ("kyiv-oblast", "Kyiv Oblast"),
    "Kiev City": ("kyiv", "Kyiv (city)"),
    "Kirovohrad": ("kirovohrad", "Kirovohrad Oblast"),
    "L'viv": ("lviv", "Lviv Oblast"),
    "Luhans'k": ("luhansk", "Luhansk Oblast"),
    "Mykolayiv": ("mykolaiv", "Mykolaiv Oblast"),
    "Odessa": ("odesa", "Odesa Oblast"),
    "Poltava": ("poltava", "Poltava Oblast"),
    "Rivne": ("rivne", "Rivne Oblast"),
    "Sumy": ("sumy", "Sumy Oblast"),
    "Ternopil'": ("ternopil", "Ternopil Oblast"),
    "Transcarpathia": ("zakarpattia", "Zakarpattia Oblast"),
    "Vinnytsya": ("vinnytsia", "Vinnytsia Oblast"),
    "Volyn": ("volyn", "Volyn Oblast"),
    "Zaporizhzhya": ("zaporizhzhia", "Zaporizhzhia Oblast"),
    "Zhytomyr": ("zhytomyr", "Zhytomyr Oblast"),
    "Crimea": ("crimea", "Autonomous Republic of Crimea"),
    "Sevastopol": ("sevastopol", "Sevastopol (city)"),
}


def main(source: str) -> None:
    data = json.loads(Path(source).read_text())
    features = []
    for feature in data["features"]:
        props = feature["properties"]
        slug, name = NAMES[props["name"]]
        features.append(
            {
                "type": "Feature",
                "id": slug,
                "properties": {
                    "slug": slug,
                    "name": name,
                    "country": props["country"],
                    "country_code": props["iso_a2"],
                    "natural_earth_name": props["name"],
                    "gn_name": props["gn_name"],
                    "fips": props["fips"],
                },
                "geometry": feature["geometry"],
            }
        )
    features.sort(key=lambda f: (f["properties"]["country"], f["id"]))
    out = Path(__file__).resolve().parent.parent / "data" / "regions" / "boundaries.geojson"
    out.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False) + "\n"
    )
    print(f"wrote {len(features)} regions to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
