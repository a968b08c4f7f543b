"""What commands do with damaged recordings: skip each with a warning and summarise at the
end, or, with ``--strict``, stop at the first."""

from __future__ import annotations

import logging

from ..plugin.contract import RecordingError

log = logging.getLogger("biosig")


class DamagePolicy:
    """Skip :class:`~biosig.RecordingError` s with a warning, or re-raise them when strict."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.skipped: list[str] = []

    def handle(self, error: RecordingError) -> None:
        """Record ``error`` and carry on, or raise it when strict."""
        if self.strict:
            raise error
        log.warning("%s (skipped)", error)
        self.skipped.append(str(error))

    def report(self) -> None:
        """Log the summary as a warning, if anything was skipped; commands call it last."""
        summary = self.summary()
        if summary:
            log.warning(summary)

    def summary(self) -> str | None:
        """One line saying how much was skipped, or ``None`` when nothing was."""
        if not self.skipped:
            return None
        return (
            f"skipped {len(self.skipped)} damaged file(s) or recording(s), named in the "
            "warnings above; --strict stops at the first instead"
        )
