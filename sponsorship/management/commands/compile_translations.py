from pathlib import Path

import polib
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po to .mo with polib (no gettext tools needed)."

    def handle(self, *args, **options):
        # The project's own catalogue plus one per app (<app>/locale/...), so apps own theirs.
        locale_dirs = [Path(d) for d in settings.LOCALE_PATHS]
        locale_dirs += [Path(settings.BASE_DIR) / app / "locale" for app in ("donors", "beneficiaries", "sponsorship")]
        for locale_dir in locale_dirs:
            for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
                mo_path = po_path.with_suffix(".mo")
                if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                    continue
                polib.pofile(str(po_path)).save_as_mofile(str(mo_path))
                self.stdout.write(f"compiled {po_path.relative_to(settings.BASE_DIR)}")
