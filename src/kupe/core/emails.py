"""Member emails are identities: normalised (NFKC, IDNA) so look-alikes cannot pass for one
another, and accepted whenever they are syntactically valid, special-use domains included."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager

import email_validator
from email_validator import EmailNotValidError, validate_email
from fontTools import unicodedata as scripts

from kupe.core.errors import ValidationFailed

_COMMON = frozenset({"Zyyy", "Zinh"})  # Common and Inherited go with any script
# UTS #39 §5.1: writing systems that mix scripts by design count as one.
_AUGMENT = {"Hani": {"Hanb", "Jpan", "Kore"}, "Hira": {"Jpan"}, "Kana": {"Jpan"}}
_AUGMENT |= {"Hang": {"Kore"}, "Bopo": {"Hanb"}}
_special_use_lock = threading.Lock()


def _script_set(char: str) -> set[str] | None:
    """The scripts `char` may be written in (None: any), augmented as UTS #39 says."""
    found = set(scripts.script_extension(char))
    if found & _COMMON:
        return None
    for script in list(found):
        found |= _AUGMENT.get(script, set())
    return found


def is_mixed_script(text: str) -> bool:
    """True when no single script covers `text` (UTS #39 resolved script set is empty)."""
    resolved: set[str] | None = None
    for char in text:
        found = _script_set(char)
        if found is None:
            continue
        resolved = found if resolved is None else resolved & found
        if not resolved:
            return True
    return False


@contextmanager
def _special_use_domains_allowed() -> Iterator[None]:
    # email_validator refuses .local, .test, .internal-style names because they cannot
    # receive mail from the Internet; an identity provider may still issue them. Its list
    # is the documented switch for this.
    with _special_use_lock:
        saved = email_validator.SPECIAL_USE_DOMAIN_NAMES
        email_validator.SPECIAL_USE_DOMAIN_NAMES = []
        try:
            yield
        finally:
            email_validator.SPECIAL_USE_DOMAIN_NAMES = saved


def normalise_email(value: str, field: str = "email") -> str:
    """The address as Kupe stores and compares it: NFKC, the domain through IDNA, lower-case;
    400 when it is not an address or a part mixes scripts (a Cyrillic a in example.com)."""
    text = unicodedata.normalize("NFKC", value.strip())
    try:
        with _special_use_domains_allowed():
            checked = validate_email(text, check_deliverability=False, globally_deliverable=False)
    except EmailNotValidError:
        raise ValidationFailed(f"{value!r} is not a valid email address", field=field) from None
    local, domain = checked.local_part, checked.domain
    parts = [("local part", local), *(("domain", label) for label in domain.split("."))]
    for what, part in parts:
        if is_mixed_script(part):
            raise ValidationFailed(
                f"{value!r} mixes writing systems in its {what}, as look-alike addresses do",
                field=field,
            )
    return f"{local}@{domain}".lower()
