"""Placeholder until the full list of the 76 Shenzhen units lands."""

UNITS: list[dict[str, str]] = [
    {
        "code": "szgov-zsj",
        "name_zh": "深圳市政务服务和数据管理局",
        "name_en": "Shenzhen Government Services and Data Administration",
        "kind": "municipal",
        "district_code": "440300",
    },
    {
        "code": "szgov-ga",
        "name_zh": "深圳市公安局",
        "name_en": "Shenzhen Public Security Bureau",
        "kind": "municipal",
        "district_code": "440300",
    },
]
