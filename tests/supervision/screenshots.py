"""Full-page screenshots of the console for the project's notes: 1366 px wide, saved to
artifacts/screenshots/supervision/<name>.png under the repository (ignored by git)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

WIDTH = 1366
FOLDER = Path(settings.BASE_DIR) / "artifacts" / "screenshots" / "supervision"


def screenshot(page, name: str) -> Path:
    size = page.viewport_size or {"height": 900}
    if size.get("width") != WIDTH:
        page.set_viewport_size({"width": WIDTH, "height": size["height"]})
    FOLDER.mkdir(parents=True, exist_ok=True)
    path = FOLDER / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
