"""PII recognizers: text in, typed spans with a redacted form out.

``RECOGNIZERS`` maps each kind to its recognizer; ``regions_for_wiki`` turns a wiki's
database name into the phone regions its text most likely uses (for ``TextContext``).
"""

from __future__ import annotations

from types import MappingProxyType

from detectors.language import wiki_language
from detectors.recognizers.aadhaar import AadhaarRecognizer
from detectors.recognizers.address import AddressRecognizer
from detectors.recognizers.base import PiiMatch, Recognizer, TextContext
from detectors.recognizers.card import CardRecognizer
from detectors.recognizers.dob import DobRecognizer
from detectors.recognizers.email import EmailRecognizer
from detectors.recognizers.iban import IbanRecognizer
from detectors.recognizers.ip import IpRecognizer
from detectors.recognizers.nino import NinoRecognizer
from detectors.recognizers.phone import PhoneRecognizer
from detectors.recognizers.ssn import SsnRecognizer

__all__ = [
    "RECOGNIZERS",
    "PiiMatch",
    "Recognizer",
    "TextContext",
    "regions_for_wiki",
]

_ALL: tuple[Recognizer, ...] = (
    EmailRecognizer(),
    PhoneRecognizer(),
    CardRecognizer(),
    IbanRecognizer(),
    SsnRecognizer(),
    NinoRecognizer(),
    AadhaarRecognizer(),
    IpRecognizer(),
    AddressRecognizer(),
    DobRecognizer(),
)
RECOGNIZERS: dict[str, Recognizer] = {r.kind: r for r in _ALL}

# Language code -> the regions whose phone numbers text in that language most likely holds,
# most likely first. Kept short: every region is one more libphonenumber parse for a
# phone-shaped number that is valid nowhere.
_LANGUAGE_REGIONS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "en": ("US", "GB", "IN", "CA", "AU", "IE", "NZ", "ZA", "PH", "NG"),
        "de": ("DE", "AT", "CH", "LI", "LU"),
        "fr": ("FR", "BE", "CH", "CA", "LU", "MC", "SN", "CI", "MA"),
        "es": ("ES", "MX", "AR", "CO", "CL", "PE", "VE", "US", "EC", "UY"),
        "it": ("IT", "CH", "SM", "VA"),
        "pt": ("BR", "PT", "AO", "MZ"),
        "nl": ("NL", "BE", "SR"),
        "pl": ("PL",),
        "ru": ("RU", "BY", "KZ", "UA", "KG"),
        "uk": ("UA",),
        "be": ("BY",),
        "ja": ("JP",),
        "zh": ("CN", "TW", "HK", "SG", "MO"),
        "yue": ("HK", "MO"),
        "nan": ("TW",),
        "lzh": ("CN", "TW"),
        "wuu": ("CN",),
        "ko": ("KR",),
        "sv": ("SE", "FI"),
        "nb": ("NO",),
        "nn": ("NO",),
        "da": ("DK",),
        "fi": ("FI",),
        "is": ("IS",),
        "cs": ("CZ",),
        "sk": ("SK",),
        "hu": ("HU",),
        "ro": ("RO", "MD"),
        "bg": ("BG",),
        "sr": ("RS", "BA", "ME"),
        "hr": ("HR", "BA"),
        "bs": ("BA",),
        "sh": ("RS", "HR", "BA", "ME"),
        "sl": ("SI",),
        "mk": ("MK",),
        "sq": ("AL", "XK"),
        "el": ("GR", "CY"),
        "tr": ("TR", "CY"),
        "he": ("IL",),
        "ar": ("SA", "EG", "AE", "MA", "DZ", "IQ", "JO", "KW", "QA", "LB"),
        "arz": ("EG",),
        "fa": ("IR", "AF"),
        "ur": ("PK", "IN"),
        "hi": ("IN",),
        "bn": ("BD", "IN"),
        "ta": ("IN", "LK", "SG"),
        "te": ("IN",),
        "mr": ("IN",),
        "gu": ("IN",),
        "kn": ("IN",),
        "ml": ("IN",),
        "pa": ("IN",),
        "pnb": ("PK",),
        "ne": ("NP",),
        "si": ("LK",),
        "id": ("ID",),
        "ms": ("MY", "SG", "BN"),
        "jv": ("ID",),
        "su": ("ID",),
        "vi": ("VN",),
        "th": ("TH",),
        "tl": ("PH",),
        "ceb": ("PH",),
        "war": ("PH",),
        "ca": ("ES", "AD", "FR"),
        "eu": ("ES", "FR"),
        "gl": ("ES",),
        "et": ("EE",),
        "lv": ("LV",),
        "lt": ("LT",),
        "uz": ("UZ",),
        "kk": ("KZ",),
        "az": ("AZ",),
        "hy": ("AM",),
        "ka": ("GE",),
        "sw": ("KE", "TZ", "UG"),
        "af": ("ZA", "NA"),
        "cy": ("GB",),
        "ga": ("IE",),
        "sco": ("GB",),
        "lb": ("LU",),
        "mt": ("MT",),
    }
)


def regions_for_wiki(wiki: str | None) -> tuple[str, ...]:
    """Likely phone regions for a wiki database name: ``"dewiki"`` -> ``("DE", "AT", ...)``.

    ``"zh_yuewiki"`` is Cantonese (Hong Kong, Macau). Multilingual and unknown wikis
    (``"commonswiki"``, ``"wikidatawiki"``, ``"metawiki"``, ...) give ``()``; recognizers
    then use their defaults.
    """
    language = wiki_language(wiki)
    return _LANGUAGE_REGIONS.get(language, ()) if language else ()
