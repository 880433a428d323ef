"""The 76 units of the Shenzhen case, as demo data.

3 directly-affiliated units, 43 municipal departments, 11 districts and 19
municipal state-owned enterprises, modelled on the units behind "i Shenzhen"
(i深圳). Administrative codes follow GB/T 2260 (440300 Shenzhen city,
440303 Luohu ... 440311 Guangming). Dapeng New Area and the Shenzhen-Shanwei
Special Cooperation Zone are functional areas without a GB/T 2260 code; the
demo gives them the local codes in ``NON_STANDARD_CODES`` so that every
district has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

UnitKind = Literal["direct", "municipal", "district", "soe"]
CITY_CODE = "440300"
NON_STANDARD_CODES = frozenset({"440312", "440313"})


@dataclass(frozen=True, slots=True)
class Unit:
    code: str  # stable slug, also the unit's login/tenant handle
    name_zh: str
    name_en: str
    kind: UnitKind
    district_code: str  # the unit's own code for districts, CITY_CODE otherwise


_DIRECT = (
    ("sz-tax", "国家税务总局深圳市税务局", "Shenzhen Tax Service, STA"),
    ("sz-customs", "深圳海关", "Shenzhen Customs"),
    ("sz-hpf", "深圳市住房公积金管理中心", "Shenzhen Housing Provident Fund Management Center"),
)

_MUNICIPAL = (
    ("sz-drc", "深圳市发展和改革委员会", "Development and Reform Commission"),
    ("sz-edu", "深圳市教育局", "Education Bureau"),
    ("sz-sti", "深圳市科技创新局", "Science, Technology and Innovation Bureau"),
    ("sz-iit", "深圳市工业和信息化局", "Industry and Information Technology Bureau"),
    ("sz-psb", "深圳市公安局", "Public Security Bureau"),
    ("sz-traffic-police", "深圳市公安局交通警察局", "Traffic Police Bureau"),
    ("sz-exit-entry", "深圳市公安局出入境管理局", "Exit and Entry Administration"),
    ("sz-civil", "深圳市民政局", "Civil Affairs Bureau"),
    ("sz-justice", "深圳市司法局", "Justice Bureau"),
    ("sz-finance", "深圳市财政局", "Finance Bureau"),
    ("sz-hrss", "深圳市人力资源和社会保障局", "Human Resources and Social Security Bureau"),
    ("sz-si-fund", "深圳市社会保险基金管理局", "Social Insurance Fund Administration"),
    ("sz-pnr", "深圳市规划和自然资源局", "Planning and Natural Resources Bureau"),
    ("sz-realestate", "深圳市不动产登记中心", "Real Estate Registration Center"),
    ("sz-env", "深圳市生态环境局", "Ecology and Environment Bureau"),
    ("sz-housing", "深圳市住房和建设局", "Housing and Construction Bureau"),
    ("sz-transport", "深圳市交通运输局", "Transport Bureau"),
    ("sz-water-affairs", "深圳市水务局", "Water Resources Bureau"),
    ("sz-commerce", "深圳市商务局", "Commerce Bureau"),
    ("sz-culture", "深圳市文化广电旅游体育局", "Culture, Radio, TV, Tourism and Sports Bureau"),
    ("sz-health", "深圳市卫生健康委员会", "Health Commission"),
    ("sz-veterans", "深圳市退役军人事务局", "Veterans Affairs Bureau"),
    ("sz-emergency", "深圳市应急管理局", "Emergency Management Bureau"),
    ("sz-audit", "深圳市审计局", "Audit Bureau"),
    ("sz-sasac", "深圳市人民政府国有资产监督管理委员会", "State-owned Assets Commission"),
    ("sz-amr", "深圳市市场监督管理局", "Administration for Market Regulation"),
    ("sz-stats", "深圳市统计局", "Statistics Bureau"),
    ("sz-medical-insurance", "深圳市医疗保障局", "Healthcare Security Administration"),
    ("sz-urban", "深圳市城市管理和综合执法局", "Urban Management and Law Enforcement Bureau"),
    ("sz-gsdata", "深圳市政务服务和数据管理局", "Government Services and Data Management Bureau"),
    ("sz-fin-reg", "深圳市地方金融管理局", "Local Financial Regulatory Bureau"),
    ("sz-foreign", "深圳市人民政府外事办公室", "Foreign Affairs Office"),
    ("sz-ports", "深圳市人民政府口岸办公室", "Port Office"),
    ("sz-petition", "深圳市信访局", "Letters and Visits Bureau"),
    ("sz-weather", "深圳市气象局", "Meteorological Bureau"),
    ("sz-archives", "深圳市档案馆", "Municipal Archives"),
    ("sz-fire", "深圳市消防救援支队", "Fire and Rescue Detachment"),
    ("sz-disabled", "深圳市残疾人联合会", "Disabled Persons' Federation"),
    ("sz-trade-union", "深圳市总工会", "Federation of Trade Unions"),
    ("sz-women", "深圳市妇女联合会", "Women's Federation"),
    ("sz-youth", "共青团深圳市委员会", "Communist Youth League Shenzhen Committee"),
    ("sz-sme", "深圳市中小企业服务局", "Small and Medium Enterprises Service Bureau"),
    ("sz-ethnic", "深圳市民族宗教事务局", "Ethnic and Religious Affairs Bureau"),
)

_DISTRICTS = (
    ("sz-futian", "深圳市福田区人民政府", "Futian District", "440304"),
    ("sz-luohu", "深圳市罗湖区人民政府", "Luohu District", "440303"),
    ("sz-nanshan", "深圳市南山区人民政府", "Nanshan District", "440305"),
    ("sz-yantian", "深圳市盐田区人民政府", "Yantian District", "440308"),
    ("sz-baoan", "深圳市宝安区人民政府", "Bao'an District", "440306"),
    ("sz-longgang", "深圳市龙岗区人民政府", "Longgang District", "440307"),
    ("sz-longhua", "深圳市龙华区人民政府", "Longhua District", "440309"),
    ("sz-pingshan", "深圳市坪山区人民政府", "Pingshan District", "440310"),
    ("sz-guangming", "深圳市光明区人民政府", "Guangming District", "440311"),
    ("sz-dapeng", "深圳市大鹏新区管理委员会", "Dapeng New Area", "440312"),
    (
        "sz-shenshan",
        "深汕特别合作区管理委员会",
        "Shenzhen-Shanwei Special Cooperation Zone",
        "440313",
    ),
)

_SOES = (
    ("sz-metro", "深圳市地铁集团有限公司", "Shenzhen Metro Group"),
    ("sz-water", "深圳市水务（集团）有限公司", "Shenzhen Water Group"),
    ("sz-gas", "深圳市燃气集团股份有限公司", "Shenzhen Gas Corporation"),
    ("sz-power", "深圳供电局有限公司", "Shenzhen Power Supply Bureau"),
    ("sz-bus", "深圳巴士集团股份有限公司", "Shenzhen Bus Group"),
    ("sz-eastern-bus", "深圳市东部公共交通有限公司", "Shenzhen Eastern Bus"),
    ("sz-tong", "深圳市深圳通有限公司", "Shenzhen Tong (transit card)"),
    ("sz-smart-city", "深圳市智慧城市科技发展集团有限公司", "Shenzhen Smart City Technology Group"),
    ("sz-talent-housing", "深圳市人才安居集团有限公司", "Shenzhen Talent Housing Group"),
    ("sz-airport", "深圳市机场（集团）有限公司", "Shenzhen Airport Group"),
    ("sz-energy", "深圳能源集团股份有限公司", "Shenzhen Energy Group"),
    ("sz-sdg", "深圳市特区建设发展集团有限公司", "Shenzhen Special Zone Construction Group"),
    ("sz-sihc", "深圳市投资控股有限公司", "Shenzhen Investment Holdings"),
    ("sz-agri", "深圳市农产品集团股份有限公司", "Shenzhen Agricultural Products Group"),
    ("sz-yantian-port", "深圳市盐田港集团有限公司", "Yantian Port Group"),
    ("sz-tagen", "深圳市天健（集团）股份有限公司", "Shenzhen Tagen Group"),
    ("sz-duty-free", "深圳市国有免税商品（集团）有限公司", "Shenzhen Duty Free Group"),
    ("sz-grain", "深圳市深粮控股股份有限公司", "Shenzhen Cereals Holdings"),
    ("sz-hti", "深圳市高新投集团有限公司", "Shenzhen High-Tech Investment Group"),
)

UNITS: tuple[Unit, ...] = (
    *(Unit(c, zh, en, "direct", CITY_CODE) for c, zh, en in _DIRECT),
    *(Unit(c, zh, en, "municipal", CITY_CODE) for c, zh, en in _MUNICIPAL),
    *(Unit(c, zh, en, "district", d) for c, zh, en, d in _DISTRICTS),
    *(Unit(c, zh, en, "soe", CITY_CODE) for c, zh, en in _SOES),
)

BY_CODE: dict[str, Unit] = {u.code: u for u in UNITS}

# District codes with short names, for cohorts, catalog filters and demo citizens.
DISTRICTS: dict[str, str] = {
    d: zh.removeprefix("深圳市").removesuffix("人民政府").removesuffix("管理委员会")
    for _, zh, _, d in _DISTRICTS
}


def units_of_kind(kind: UnitKind) -> tuple[Unit, ...]:
    return tuple(u for u in UNITS if u.kind == kind)
