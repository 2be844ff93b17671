"""The pure core of Frontline Atlas: plain Python over shapely and pyproj, no web, no SQL."""
