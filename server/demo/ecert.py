"""Demo e-certificates: about 20 common certificate types with their issuing
Shenzhen units, the matter codes counters verify for, and a resident ID
e-certificate in the demo citizen's wallet."""

from __future__ import annotations

from typing import Any

from server.bootstrap import Services
from server.sims.registry import persons


def _f(
    key: str, zh: str, en: str, *, mask: str = "none", qr: bool = False, req: bool = True
) -> dict[str, Any]:
    return {"key": key, "label_zh": zh, "label_en": en, "mask": mask, "qr": qr, "required": req}


NAME = _f("name", "姓名", "Name", mask="name", qr=True)
ID_NUMBER = _f("id_number", "公民身份号码", "ID number", mask="id", qr=True)


def _person_type(
    code: str, zh: str, en: str, units: list[str], extra: list[dict[str, Any]], max_days: int | None
) -> tuple[str, str, str, dict[str, Any]]:
    return (
        code,
        zh,
        en,
        {
            "fields": [NAME, ID_NUMBER, *extra],
            "name_field": "name",
            "id_field": "id_number",
            "validity": {"max_days": max_days, "requires_until": False},
            "issuer_units": units,
        },
    )


def _org_type(
    code: str, zh: str, en: str, units: list[str], extra: list[dict[str, Any]], max_days: int | None
) -> tuple[str, str, str, dict[str, Any]]:
    return (
        code,
        zh,
        en,
        {
            "fields": [
                _f("org_name", "名称", "Name", mask="name", qr=True),
                _f("uscc", "统一社会信用代码", "Unified social credit code", qr=True),
                *extra,
            ],
            "name_field": "org_name",
            "id_field": "uscc",
            "validity": {"max_days": max_days, "requires_until": False},
            "issuer_units": units,
        },
    )


YEAR = 366
TYPES = [
    _person_type(
        "eid",
        "居民身份证",
        "Resident identity card",
        ["sz-psb"],
        [
            _f("sex", "性别", "Sex", qr=True),
            _f("birth_date", "出生日期", "Date of birth", qr=True),
            _f("address", "住址", "Address", req=False),
        ],
        20 * YEAR,
    ),
    _person_type(
        "dl",
        "机动车驾驶证",
        "Driver's licence",
        ["sz-traffic-police"],
        [_f("vehicle_class", "准驾车型", "Vehicle class", qr=True)],
        10 * YEAR,
    ),
    _person_type(
        "vl",
        "机动车行驶证",
        "Vehicle licence",
        ["sz-traffic-police"],
        [_f("plate", "号牌号码", "Plate number", qr=True), _f("vin", "车辆识别代号", "VIN")],
        None,
    ),
    _person_type(
        "hhr",
        "居民户口簿",
        "Household register",
        ["sz-psb"],
        [_f("household_no", "户号", "Household number", qr=True), _f("address", "住址", "Address")],
        None,
    ),
    _person_type(
        "rp",
        "居住证",
        "Residence permit",
        ["sz-psb"],
        [_f("address", "居住地址", "Address of residence", qr=True)],
        3 * YEAR,
    ),
    _person_type(
        "ssc",
        "社会保障卡",
        "Social security card",
        ["sz-hrss"],
        [_f("card_no", "卡号", "Card number", mask="id", qr=True)],
        10 * YEAR,
    ),
    _person_type(
        "mic",
        "医保电子凭证",
        "Medical insurance card",
        ["sz-medical-insurance"],
        [_f("insured_place", "参保地", "Insured in", qr=True)],
        None,
    ),
    _person_type(
        "mc",
        "结婚证",
        "Marriage certificate",
        ["sz-civil"],
        [
            _f("spouse_name", "配偶姓名", "Spouse", mask="name", qr=True),
            _f("registered_on", "登记日期", "Registered on", qr=True),
        ],
        None,
    ),
    _person_type(
        "bc",
        "出生医学证明",
        "Birth certificate",
        ["sz-health"],
        [
            _f("birth_date", "出生日期", "Date of birth", qr=True),
            _f("birthplace", "出生地点", "Place"),
        ],
        None,
    ),
    _org_type(
        "bl",
        "营业执照",
        "Business licence",
        ["sz-amr"],
        [_f("legal_rep", "法定代表人", "Legal representative", mask="name", qr=True)],
        None,
    ),
    _person_type(
        "pq",
        "职业资格证书",
        "Professional qualification",
        ["sz-hrss"],
        [_f("occupation", "职业", "Occupation", qr=True), _f("level", "等级", "Level", qr=True)],
        None,
    ),
    _person_type(
        "deg",
        "学位证书",
        "Degree certificate",
        ["sz-edu"],
        [
            _f("degree", "学位", "Degree", qr=True),
            _f("university", "授予单位", "University", qr=True),
        ],
        None,
    ),
    _person_type(
        "dc",
        "残疾人证",
        "Disability certificate",
        ["sz-disabled"],
        [_f("category", "残疾类别", "Category"), _f("grade", "残疾等级", "Grade")],
        10 * YEAR,
    ),
    _person_type(
        "hpf",
        "住房公积金缴存证明",
        "Housing provident fund certificate",
        ["sz-hpf"],
        [_f("account_no", "公积金账号", "Account number", mask="id", qr=True)],
        YEAR,
    ),
    _person_type(
        "pp",
        "普通护照",
        "Passport",
        ["sz-exit-entry"],
        [_f("passport_no", "护照号码", "Passport number", mask="id", qr=True)],
        10 * YEAR,
    ),
    _person_type(
        "hkmo",
        "往来港澳通行证",
        "Exit-entry permit to Hong Kong and Macao",
        ["sz-exit-entry"],
        [_f("permit_no", "证件号码", "Permit number", mask="id", qr=True)],
        10 * YEAR,
    ),
    _person_type(
        "rec",
        "不动产权证书",
        "Real estate title certificate",
        ["sz-realestate"],
        [
            _f("title_no", "不动产权证号", "Title number", qr=True),
            _f("address", "坐落", "Location"),
        ],
        None,
    ),
    _person_type(
        "tq",
        "教师资格证",
        "Teacher qualification",
        ["sz-edu"],
        [_f("subject", "任教学科", "Subject", qr=True)],
        None,
    ),
    _person_type(
        "vet",
        "退役军人优待证",
        "Veteran's preferential treatment card",
        ["sz-veterans"],
        [],
        None,
    ),
    _person_type(
        "tax",
        "个人所得税纳税记录",
        "Individual income tax record",
        ["sz-tax"],
        [_f("tax_year", "纳税年度", "Tax year", qr=True)],
        YEAR,
    ),
    _person_type(
        "szt",
        "深圳通乘车码",
        "Shenzhen Tong transit card",
        ["sz-tong"],
        [_f("card_no", "卡号", "Card number", mask="id", qr=True)],
        5 * YEAR,
    ),
]

# Matter code -> claim keys the counter may see (duty-based lookup).
MATTERS = [
    ("identity-check", "身份核验", "Identity check", ("name", "id_number")),
    ("hotel-check-in", "旅馆住宿登记", "Hotel check-in", ("name", "id_number", "sex")),
    ("bank-account", "银行开户", "Open a bank account", ("*",)),
    ("age-check", "年龄核验", "Age check", ("birth_date",)),
    ("traffic-stop", "交通查验", "Traffic check", ("name", "vehicle_class", "plate")),
    (
        "business-registration",
        "企业登记",
        "Business registration",
        ("org_name", "uscc", "legal_rep"),
    ),
    ("government-service", "政务服务办事", "Government service counter", ("*",)),
]


async def seed_ecert(svc: Services, citizen_sub: str) -> dict[str, Any]:
    """Types, matters and the citizen's resident ID (idempotent on its document number)."""
    for code, zh, en, schema in TYPES:
        await svc.certificates.upsert_type(code, zh, en, schema)
    for code, zh, en, fields in MATTERS:
        await svc.certificates.upsert_matter(code, zh, en, fields)
    person = persons()[0]
    async with svc.pool.acquire() as conn:
        psb = await conn.fetchval("SELECT id FROM units WHERE code = 'sz-psb'")
    result = await svc.certificates.issue_for_unit(
        psb,
        {
            "type": "eid",
            "doc_number": "DEMO-EID-0001",
            "holder_sub": citizen_sub,
            "claims": {
                "name": person.name,
                "id_number": person.id_number,
                "sex": "女",
                "birth_date": f"{person.id_number[6:10]}-{person.id_number[10:12]}-"
                f"{person.id_number[12:14]}",
                "address": "广东省深圳市南山区粤海街道",
            },
            "valid_from": "2020-01-01",
            "valid_until": "2039-12-31",
        },
        issued_by=None,
    )
    return {
        "types": len(TYPES),
        "matters": [m[0] for m in MATTERS],
        "resident_id": result.certificate.id,
    }
