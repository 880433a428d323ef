"""A deterministic catalog of 8,000+ realistic mini-app manifests for the demo.

Built from the 76 Shenzhen units (:mod:`server.demo.shenzhen_units`): city-wide
services run by the unit that owns them (traffic fines by the traffic police,
provident fund by its management centre), district branches of city units,
district and street (街道) services, hospitals, schools, community health
centres, parks and libraries run by the health commission or a district, and
life services run by state-owned enterprises. The same call always yields the
same manifests, ids and demo popularity, so tests, benchmarks and screenshots
agree. Templates are ``|``-separated tables: data to read, not code.

Assurance levels: L1 phone-verified, L2 real-name, L3 real-name plus face.
Scopes are the OpenID Connect claims an app asks the citizen to consent to.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, cast

from pypinyin import lazy_pinyin

from miniapps.domain import CATEGORIES as DOMAIN_CATEGORIES
from server.demo.shenzhen_units import BY_CODE, DISTRICTS

AppKind = Literal["service", "life"]
ALL_DISTRICTS = tuple(DISTRICTS)

# One category table: the platform's own (the catalog filters by these codes).
CATEGORIES = DOMAIN_CATEGORIES

_BASE = ("openid", "profile")
SCOPES: dict[str, tuple[str, ...]] = {
    "base": _BASE,
    "phone": (*_BASE, "phone"),
    "real": (*_BASE, "phone", "real_name", "id_number"),
    "phone+pay": (*_BASE, "phone", "payment"),
    "real+pay": (*_BASE, "phone", "real_name", "id_number", "payment"),
}


@dataclass(frozen=True, slots=True)
class Manifest:
    app_id: str
    slug: str
    unit_code: str
    unit_name: str
    name_zh: str
    name_en: str
    description: str
    category: str
    kind: AppKind
    districts: tuple[str, ...]
    min_assurance: str
    scopes: tuple[str, ...]
    use_count: int
    rating_sum: float
    rating_count: int


def _rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in table.strip().splitlines()]


def _groups(table: str) -> list[tuple[list[str], list[list[str]]]]:
    """Header lines followed by indented service lines."""
    out: list[tuple[list[str], list[list[str]]]] = []
    for line in table.strip("\n").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if line.startswith(" "):
            out[-1][1].append(cells)
        else:
            out.append((cells, []))
    return out


# City-wide services: unit | category | kind | name zh | name en | level | scopes.
CITY = """
sz-traffic-police | traffic | service | 交通违法处理 | Traffic Violation Handling | L2 | real
sz-traffic-police | traffic | service | 电子监控违法查询 | Camera Violation Lookup | L2 | real
sz-traffic-police | traffic | service | 驾驶证业务 | Driving Licence Services | L3 | real
sz-traffic-police | traffic | service | 机动车年审预约 | Vehicle Inspection Booking | L2 | real
sz-traffic-police | traffic | service | 交通事故快处 | Minor Accident Quick Handling | L2 | real
sz-traffic-police | traffic | service | 粤B外地车预约通行 | Non-local Car Permit | L2 | real
sz-psb | public-security | service | 户籍业务办理 | Household Registration | L3 | real
sz-psb | public-security | service | 居住证申领 | Residence Permit | L2 | real
sz-psb | public-security | service | 身份证办理预约 | ID Card Appointment | L3 | real
sz-psb | public-security | service | 无犯罪记录证明 | No Criminal Record Certificate | L3 | real
sz-exit-entry | public-security | service | 港澳通行证签注 | HK and Macao Travel Endorsement | L3 | real
sz-exit-entry | public-security | service | 护照办理预约 | Passport Appointment | L3 | real
sz-hrss | social-security | service | 社保参保信息查询 | Social Insurance Records | L2 | real
sz-hrss | social-security | service | 社保卡申领 | Social Security Card Application | L2 | real
sz-hrss | employment | service | 失业保险金申领 | Unemployment Benefit Claim | L3 | real
sz-hrss | employment | service | 职业技能补贴 | Vocational Skill Subsidy | L2 | real
sz-hrss | employment | service | 人才引进 | Talent Introduction | L3 | real
sz-si-fund | social-security | service | 养老保险待遇查询 | Pension Benefits | L2 | real
sz-si-fund | social-security | service | 社保缴费 | Social Insurance Payment | L2 | real
sz-medical-insurance | social-security | service | 医保电子凭证 | Medical Insurance e-Voucher | L2 | real
sz-medical-insurance | social-security | service | 医保异地就医备案 | Out-of-town Medical Filing | L2 | real
sz-medical-insurance | social-security | service | 医保个人账户查询 | Medical Insurance Account | L2 | real
sz-hpf | provident-fund | service | 住房公积金查询 | Provident Fund Balance | L2 | real
sz-hpf | provident-fund | service | 住房公积金提取 | Provident Fund Withdrawal | L3 | real
sz-hpf | provident-fund | service | 公积金贷款申请 | Provident Fund Loan | L3 | real
sz-hpf | provident-fund | service | 公积金缴存证明 | Provident Fund Certificate | L2 | real
sz-tax | tax | service | 个人所得税汇算 | Individual Income Tax Settlement | L3 | real
sz-tax | tax | service | 完税证明开具 | Tax Payment Certificate | L2 | real
sz-tax | tax | service | 发票查验 | Invoice Verification | L1 | phone
sz-customs | business | service | 跨境电商个人额度查询 | Cross-border Quota Lookup | L2 | real
sz-amr | business | service | 企业开办一网通办 | Business Start-up One Portal | L3 | real
sz-amr | business | service | 个体工商户登记 | Sole Proprietor Registration | L3 | real
sz-amr | business | service | 食品安全投诉 | Food Safety Complaint | L1 | phone
sz-housing | housing | service | 公共住房轮候 | Public Housing Waiting List | L3 | real
sz-housing | housing | service | 住房租赁备案 | Rental Registration | L2 | real
sz-realestate | housing | service | 不动产权证查询 | Property Title Lookup | L3 | real
sz-pnr | housing | service | 规划许可公示 | Planning Permit Notices | L1 | base
sz-edu | education | service | 义务教育学位申请 | School Place Application | L3 | real
sz-edu | education | service | 中考成绩查询 | High School Entrance Exam Results | L2 | real
sz-civil | civil-affairs | service | 婚姻登记预约 | Marriage Registration Booking | L3 | real
sz-civil | civil-affairs | service | 高龄津贴申请 | Senior Allowance | L3 | real
sz-civil | civil-affairs | service | 殡葬服务 | Funeral Services | L2 | real
sz-health | health | service | 电子健康卡 | Electronic Health Card | L2 | real
sz-health | health | service | 出生医学证明 | Birth Medical Certificate | L3 | real
sz-veterans | civil-affairs | service | 退役军人优待证 | Veterans Preferential Card | L3 | real
sz-disabled | civil-affairs | service | 残疾人证办理 | Disability Certificate | L3 | real
sz-justice | civil-affairs | service | 法律援助申请 | Legal Aid Application | L2 | real
sz-transport | transport | service | 网约车驾驶员证 | Ride-hailing Driver Permit | L3 | real
sz-transport | transport | life | 实时路况 | Live Traffic | L1 | base
sz-weather | culture-sports | life | 深圳天气 | Shenzhen Weather | L1 | base
sz-culture | culture-sports | life | 文体场馆预订 | Sports Venue Booking | L1 | phone
sz-culture | culture-sports | life | 深圳图书馆借阅 | Shenzhen Library | L2 | real
sz-urban | community | life | 垃圾分类指南 | Waste Sorting Guide | L1 | base
sz-urban | community | life | 公园预约 | Park Reservation | L1 | phone
sz-gsdata | community | service | 12345热线 | 12345 Hotline | L1 | phone
sz-gsdata | community | service | 电子证照 | Electronic Licences | L3 | real
sz-metro | transport | life | 地铁乘车码 | Metro Ride Code | L2 | phone+pay
sz-metro | transport | life | 地铁失物招领 | Metro Lost and Found | L1 | phone
sz-bus | transport | life | 实时公交 | Real-time Bus | L1 | base
sz-eastern-bus | transport | life | 东部公交定制巴士 | Eastern Custom Bus | L1 | phone
sz-tong | transport | life | 深圳通充值 | Shenzhen Tong Top-up | L2 | phone+pay
sz-airport | transport | life | 机场航班动态 | Airport Flight Status | L1 | base
sz-water | utilities | life | 水费缴纳 | Water Bill Payment | L2 | phone+pay
sz-water | utilities | life | 用水报装 | Water Connection | L2 | real
sz-gas | utilities | life | 燃气缴费 | Gas Bill Payment | L2 | phone+pay
sz-gas | utilities | life | 燃气安检预约 | Gas Safety Check Booking | L1 | phone
sz-power | utilities | life | 电费缴纳 | Electricity Bill Payment | L2 | phone+pay
sz-power | utilities | life | 停电通知 | Power Outage Notices | L1 | base
sz-talent-housing | housing | life | 人才房配租 | Talent Housing Lease | L3 | real
sz-smart-city | community | life | i深圳积分 | i Shenzhen Points | L1 | phone
sz-agri | community | life | 菜篮子价格 | Vegetable Basket Prices | L1 | base
sz-duty-free | community | life | 免税购物 | Duty-free Shopping | L2 | phone+pay
sz-drc | community | service | 价格监测信息 | Price Monitoring | L1 | base
sz-sti | business | service | 科技创新券申领 | Innovation Vouchers | L3 | real
sz-iit | business | service | 工业企业扶持申报 | Industrial Support Application | L3 | real
sz-finance | tax | service | 非税收入缴款 | Non-tax Fee Payment | L2 | real+pay
sz-audit | community | service | 审计结果公告 | Audit Reports | L1 | base
sz-sasac | community | service | 国资国企信息公开 | State Assets Disclosure | L1 | base
sz-stats | community | service | 统计数据查询 | Statistics Lookup | L1 | base
sz-fin-reg | business | service | 金融消费投诉 | Financial Consumer Complaints | L1 | phone
sz-foreign | public-security | service | 外籍人士服务 | Services for Foreigners | L2 | real
sz-ports | transport | life | 口岸通关信息 | Border Crossing Status | L1 | base
sz-petition | community | service | 网上信访 | Online Petitions | L2 | real
sz-archives | civil-affairs | service | 档案查询 | Archive Search | L3 | real
sz-trade-union | employment | service | 工会会员服务 | Trade Union Members | L2 | real
sz-women | civil-affairs | service | 妇女儿童维权 | Women and Children Rights | L2 | real
sz-youth | community | life | 青年志愿者 | Youth Volunteers | L1 | phone
sz-sme | business | service | 中小企业服务 | SME Services | L2 | real
sz-ethnic | civil-affairs | service | 民族宗教事务 | Ethnic and Religious Affairs | L1 | phone
sz-commerce | community | life | 消费券领取 | Consumer Vouchers | L2 | real
sz-water-affairs | community | service | 河湖问题举报 | River Issue Reports | L1 | phone
sz-emergency | community | life | 应急避难场所 | Emergency Shelters | L1 | base
sz-sdg | transport | life | 建发智慧停车 | SDG Smart Parking | L1 | phone+pay
sz-sihc | housing | life | 深投控物业服务 | SIHC Property Services | L2 | real
sz-yantian-port | transport | life | 集装箱动态查询 | Container Tracking | L1 | base
sz-tagen | housing | life | 天健物业缴费 | Tagen Property Fees | L2 | phone+pay
sz-grain | community | life | 放心粮油订购 | Grain and Oil Orders | L2 | phone+pay
sz-hti | business | service | 小微企业融资担保 | Small Business Loan Guarantees | L3 | real
sz-energy | transport | life | 充电桩查询 | EV Charger Finder | L1 | base
"""

# Run by every district: category | kind | zh (after the district name) | en | level | scopes.
DISTRICT = """
education | service | 学位申请 | School Place Application | L3 | real
education | service | 幼儿园招生报名 | Kindergarten Enrolment | L3 | real
education | service | 课后服务报名 | After-school Programme | L2 | real
civil-affairs | service | 长者补贴 | Elderly Subsidy | L3 | real
civil-affairs | service | 临时救助申请 | Temporary Assistance | L3 | real
civil-affairs | service | 残疾人两项补贴 | Disability Allowances | L3 | real
business | service | 企业服务 | Enterprise Services | L2 | real
business | service | 产业扶持资金申报 | Industry Support Funds | L3 | real
business | service | 政府采购 | Public Procurement | L2 | real
employment | service | 就业补贴 | Employment Subsidy | L2 | real
employment | service | 招聘会 | Job Fairs | L1 | phone
housing | service | 保障房申请 | Affordable Housing Application | L3 | real
housing | service | 城中村租赁 | Urban Village Rentals | L2 | real
health | service | 疫苗接种预约 | Vaccination Booking | L2 | real
health | service | 免费体检 | Free Health Check | L2 | real
culture-sports | life | 文化活动报名 | Cultural Events | L1 | phone
culture-sports | life | 体育场馆 | Sports Venues | L1 | phone
culture-sports | life | 图书馆 | District Library | L2 | real
community | service | 民生诉求 | Residents' Requests | L1 | phone
community | service | 政务服务中心预约 | Service Hall Booking | L2 | real
community | life | 智慧停车 | Smart Parking | L1 | phone+pay
traffic | service | 占道停车缴费 | Roadside Parking Fees | L1 | phone+pay
"""

# Run by the district for each of its streets (街道).
STREET = """
community | service | 党群服务中心 | Community Service Centre | L1 | phone
community | service | 网格员服务 | Grid Officer Services | L1 | phone
community | service | 出租屋登记 | Rental Room Registration | L2 | real
community | life | 长者饭堂 | Seniors' Canteen | L2 | real
community | life | 垃圾分类积分 | Waste Sorting Points | L1 | phone
community | life | 志愿服务 | Volunteering | L1 | phone
civil-affairs | service | 居家养老服务 | Home Care for Seniors | L2 | real
civil-affairs | service | 计生服务 | Family Planning Services | L2 | real
public-security | service | 居住登记 | Residence Registration | L2 | real
culture-sports | life | 文体中心预订 | Culture and Sports Centre | L1 | phone
culture-sports | life | 社区公园活动 | Park Activities | L1 | phone
housing | service | 物业纠纷调解 | Property Dispute Mediation | L2 | real
community | service | 便民服务站预约 | Service Station Booking | L2 | real
employment | service | 社区就业服务 | Community Job Services | L1 | phone
"""

# Services of every hospital: zh | en | level | scopes.
HOSPITAL = """
预约挂号 | Appointment Booking | L2 | real
检查报告查询 | Test Reports | L2 | real
门诊缴费 | Outpatient Payment | L2 | real+pay
住院预交金 | Inpatient Deposit | L2 | real+pay
智能导诊 | Symptom Triage | L1 | phone
体检预约 | Health Check Booking | L2 | real
病历复印 | Medical Record Copies | L3 | real
医生排班 | Doctor Schedules | L1 | base
互联网医院 | Online Consultation | L2 | real
满意度评价 | Patient Feedback | L1 | phone
"""

# Services of every school.
SCHOOL = """
校园缴费 | School Fees | L2 | real+pay
成绩查询 | Grades | L2 | real
家校通知 | School Notices | L1 | phone
课后服务 | After-school Care | L2 | real
校服订购 | School Uniforms | L1 | phone+pay
"""

# Services of every community health centre (社康).
CLINIC = """
家庭医生签约 | Family Doctor Sign-up | L2 | real
社康预约 | Clinic Booking | L2 | real
儿童预防接种 | Child Vaccinations | L2 | real
"""

# District branches of city units: unit | branch zh | en | category, then their services.
BRANCHES = """
sz-traffic-police | 交警大队 | Traffic Police Brigade | traffic
  违法处理预约 | Violation Handling Booking | L2 | real
  事故处理 | Accident Handling | L2 | real
  车管业务预约 | Vehicle Services Booking | L2 | real
  占道施工审批 | Roadwork Permits | L2 | real
  停车诉求 | Parking Complaints | L1 | phone
sz-psb | 公安分局 | Public Security Sub-bureau | public-security
  户政业务预约 | Household Affairs Booking | L3 | real
  户口证明开具 | Household Certificate | L3 | real
  报警回执查询 | Police Report Receipt | L2 | real
  犬只登记 | Dog Registration | L2 | real
sz-si-fund | 社保分局 | Social Insurance Branch | social-security
  参保登记 | Enrolment | L2 | real
  缴费基数申报 | Contribution Base Filing | L2 | real
  待遇申领 | Benefit Claims | L3 | real
  社保卡补办 | Card Replacement | L2 | real
  退休办理 | Retirement Processing | L3 | real
  生育津贴 | Maternity Allowance | L3 | real
sz-tax | 税务局 | Tax Bureau | tax
  纳税申报 | Tax Filing | L3 | real
  发票领用 | Invoice Issuance | L3 | real
  社保费缴纳 | Social Insurance Levy | L2 | real+pay
  办税预约 | Tax Office Booking | L2 | real
  个税咨询 | Income Tax Help | L1 | phone
sz-amr | 市场监管局 | Market Regulation Bureau | business
  营业执照办理 | Business Licence | L3 | real
  食品经营许可 | Food Business Permit | L3 | real
  消费投诉举报 | Consumer Complaints | L1 | phone
  特种设备登记 | Special Equipment Registration | L2 | real
  药品零售许可 | Pharmacy Permit | L3 | real
sz-hpf | 公积金管理部 | Provident Fund Office | provident-fund
  业务预约 | Appointment | L2 | real
  提取咨询 | Withdrawal Help | L1 | phone
  单位缴存登记 | Employer Registration | L3 | real
sz-realestate | 不动产登记所 | Real Estate Registry | housing
  登记预约 | Registration Booking | L3 | real
  查档服务 | Records Search | L3 | real
  抵押登记 | Mortgage Registration | L3 | real
sz-water | 水务营业厅 | Water Service Hall | utilities
  业务预约 | Appointment | L1 | phone
  供水报修 | Water Repair | L1 | phone
  水费缴纳 | Water Bill | L2 | phone+pay
sz-gas | 燃气营业厅 | Gas Service Hall | utilities
  业务预约 | Appointment | L1 | phone
  燃气报修 | Gas Repair | L1 | phone
  燃气开户 | Gas Account Opening | L2 | real
sz-power | 供电营业厅 | Power Service Hall | utilities
  业务预约 | Appointment | L1 | phone
  故障报修 | Power Repair | L1 | phone
  用电报装 | Electricity Connection | L2 | real
sz-pnr | 规划土地管理局 | Planning and Land Office | housing
  用地规划许可 | Land Use Permit | L3 | real
  建设工程规划许可 | Construction Planning Permit | L3 | real
sz-env | 生态环境分局 | Ecology and Environment Branch | community
  环评审批 | Environmental Impact Approval | L3 | real
  噪声投诉 | Noise Complaints | L1 | phone
sz-fire | 消防救援大队 | Fire and Rescue Brigade | public-security
  消防检查预约 | Fire Inspection Booking | L2 | real
  火灾隐患举报 | Fire Hazard Report | L1 | phone
sz-exit-entry | 出入境办证大厅 | Exit-Entry Service Hall | public-security
  办证预约 | Document Booking | L3 | real
  自助签注 | Self-service Endorsement | L3 | real
sz-medical-insurance | 医保分局 | Healthcare Security Branch | social-security
  医保参保 | Medical Insurance Enrolment | L2 | real
  医疗费用报销 | Medical Reimbursement | L3 | real
  门诊特定病种 | Special Outpatient Conditions | L3 | real
"""

# Per street venues: unit ("district": the street's district) | zh | en | category.
VENUES = """
sz-psb | 派出所 | Police Station | public-security
  户籍预约 | Household Registration Booking | L3 | real
  居住证办理 | Residence Permit | L2 | real
  证明开具 | Certificates | L3 | real
district | 公园 | Park | culture-sports
  入园预约 | Entry Booking | L1 | phone
  活动报名 | Events | L1 | phone
district | 湿地公园 | Wetland Park | culture-sports
  入园预约 | Entry Booking | L1 | phone
district | 图书馆 | Library | culture-sports
  借阅服务 | Borrowing | L2 | real
  座位预约 | Seat Booking | L1 | phone
district | 体育中心 | Sports Centre | culture-sports
  场地预订 | Court Booking | L1 | phone+pay
"""

STREETS: dict[str, tuple[str, ...]] = {
    "440304": ("园岭", "南园", "福田", "沙头", "香蜜湖", "梅林", "莲花", "华富", "福保", "华强北"),
    "440303": ("桂园", "黄贝", "东门", "翠竹", "南湖", "笋岗", "东湖", "莲塘", "东晓", "清水河"),
    "440305": ("南头", "南山", "沙河", "蛇口", "招商", "粤海", "桃源", "西丽"),
    "440308": ("沙头角", "海山", "盐田", "梅沙"),
    "440306": ("新安", "西乡", "航城", "福永", "福海", "沙井", "新桥", "松岗", "燕罗", "石岩"),
    "440307": (
        "平湖",
        "坂田",
        "布吉",
        "南湾",
        "横岗",
        "龙城",
        "龙岗",
        "坪地",
        "吉华",
        "宝龙",
        "园山",
    ),
    "440309": ("观湖", "民治", "龙华", "大浪", "福城", "观澜"),
    "440310": ("坪山", "马峦", "碧岭", "石井", "坑梓", "龙田"),
    "440311": ("光明", "公明", "新湖", "凤凰", "玉塘", "马田"),
    "440312": ("大鹏", "南澳", "葵涌"),
    "440313": ("鹅埠", "小漠", "鲘门", "赤石"),
}

CITY_HOSPITALS = """
深圳市人民医院 | Shenzhen People's Hospital
深圳市第二人民医院 | Shenzhen Second People's Hospital
深圳市第三人民医院 | Shenzhen Third People's Hospital
北京大学深圳医院 | Peking University Shenzhen Hospital
香港大学深圳医院 | HKU-Shenzhen Hospital
深圳市中医院 | Shenzhen Traditional Chinese Medicine Hospital
深圳市儿童医院 | Shenzhen Children's Hospital
深圳市妇幼保健院 | Shenzhen Maternity and Child Healthcare Hospital
深圳市眼科医院 | Shenzhen Eye Hospital
深圳市康宁医院 | Shenzhen Kangning Hospital
中山大学附属第七医院 | Seventh Affiliated Hospital, Sun Yat-sen University
南方科技大学医院 | SUSTech Hospital
深圳大学总医院 | Shenzhen University General Hospital
中国医学科学院肿瘤医院深圳医院 | Cancer Hospital CAMS Shenzhen
中国医学科学院阜外医院深圳医院 | Fuwai Hospital CAMS Shenzhen
深圳市孙逸仙心血管医院 | Shenzhen Sun Yat-sen Cardiovascular Hospital
深圳市萨米医疗中心 | Shenzhen SAMII Medical Center
深圳市慢性病防治中心 | Shenzhen Center for Chronic Disease Control
"""

DISTRICT_HOSPITALS = """
人民医院 | People's Hospital
中医院 | TCM Hospital
妇幼保健院 | Maternity and Child Hospital
中心医院 | Central Hospital
第二人民医院 | Second People's Hospital
慢性病防治院 | Chronic Disease Hospital
"""

SCHOOL_KINDS = """
小学 | Primary School
第二小学 | No. 2 Primary School
第三小学 | No. 3 Primary School
中学 | Middle School
第二中学 | No. 2 Middle School
实验学校 | Experimental School
幼儿园 | Kindergarten
第二幼儿园 | No. 2 Kindergarten
第三幼儿园 | No. 3 Kindergarten
外国语学校 | Foreign Languages School
"""


def _digest(*parts: str) -> str:
    # Slugs must be ASCII and stable: a short digest of the Chinese parts.
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:12]


def _romanize(zh: str) -> str:
    """Street names in English documents are written in pinyin: 马峦 -> Maluan."""
    return "".join(lazy_pinyin(zh)).capitalize()


def _district_unit(code: str) -> str:
    return next(
        u.code for u in BY_CODE.values() if u.kind == "district" and u.district_code == code
    )


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.items: list[Manifest] = []

    def add(
        self,
        unit_code: str,
        category: str,
        kind: str,
        names: tuple[str, str],
        level: str,
        scopes: str,
        districts: tuple[str, ...],
        reach: float,
    ) -> None:
        unit = BY_CODE[unit_code]
        name_zh, name_en = names
        slug = f"{unit_code.removeprefix('sz-')}-{_digest(unit_code, name_zh)}"
        # Popularity ~ log-normal, scaled by how many citizens the app can serve.
        uses = int(self.rng.lognormvariate(8, 1.6) * reach)
        votes = int(uses * self.rng.uniform(0.001, 0.02))
        mean = min(5.0, max(1.0, self.rng.gauss(4.2, 0.45)))
        self.items.append(
            Manifest(
                app_id="app_" + hashlib.sha256(slug.encode()).hexdigest()[:20],
                slug=slug,
                unit_code=unit_code,
                unit_name=unit.name_zh,
                name_zh=name_zh,
                name_en=name_en,
                description=f"{unit.name_zh}提供的{CATEGORIES[category]}服务：{name_zh}，"
                "在i深圳在线办理，少跑腿。",
                category=category,
                kind=cast(AppKind, kind),
                districts=districts,
                min_assurance=level,
                scopes=SCOPES[scopes],
                use_count=uses,
                rating_sum=round(mean * votes, 1),
                rating_count=votes,
            )
        )


def generate(seed: int = 440300) -> list[Manifest]:
    """All demo manifests (8,000+), always the same for the same seed, in a stable order."""
    b = _Builder(seed)
    for unit, cat, kind, zh, en, level, scopes in _rows(CITY):
        b.add(unit, cat, kind, (zh, en), level, scopes, ALL_DISTRICTS, 50.0)
    for code in DISTRICTS:
        _district(b, code)
    for hospital, unit, districts in _hospitals():
        for zh, en, level, scopes in _rows(HOSPITAL):
            names = (hospital[0] + zh, f"{hospital[1]} {en}")
            b.add(unit, "hospital", "service", names, level, scopes, districts, 4.0)
    for code, streets in STREETS.items():
        unit = _district_unit(code)
        for street in streets:
            _street_institutions(b, unit, code, street)
    return b.items


def _district(b: _Builder, code: str) -> None:
    unit = _district_unit(code)
    district, district_en = DISTRICTS[code], BY_CODE[unit].name_en
    for cat, kind, zh, en, level, scopes in _rows(DISTRICT):
        names = (district + zh, f"{district_en} {en}")
        b.add(unit, cat, kind, names, level, scopes, (code,), 5.0)
    for (unit_code, b_zh, b_en, cat), services in _groups(BRANCHES):
        for zh, en, level, scopes in services:
            names = (district + b_zh + zh, f"{district_en} {b_en}: {en}")
            b.add(unit_code, cat, "service", names, level, scopes, (code,), 3.0)
    for street in STREETS[code]:
        for cat, kind, zh, en, level, scopes in _rows(STREET):
            names = (f"{street}街道{zh}", f"{en} ({_romanize(street)} Subdistrict)")
            b.add(unit, cat, kind, names, level, scopes, (code,), 1.0)
        for (owner, v_zh, v_en, cat), services in _groups(VENUES):
            kind = "life" if owner == "district" else "service"
            for zh, en, level, scopes in services:
                names = (street + v_zh + zh, f"{_romanize(street)} {v_en}: {en}")
                b.add(
                    unit if kind == "life" else owner, cat, kind, names, level, scopes, (code,), 0.8
                )


def _hospitals() -> Iterator[tuple[tuple[str, str], str, tuple[str, ...]]]:
    for zh, en in _rows(CITY_HOSPITALS):
        yield (zh, en), "sz-health", ALL_DISTRICTS
    for code, district in DISTRICTS.items():
        unit = _district_unit(code)
        for zh, en in _rows(DISTRICT_HOSPITALS):
            yield (f"深圳市{district}{zh}", f"{BY_CODE[unit].name_en} {en}"), unit, (code,)


def _street_institutions(b: _Builder, unit: str, code: str, street: str) -> None:
    romanized = _romanize(street)
    for kind_zh, kind_en in _rows(SCHOOL_KINDS):
        school = (DISTRICTS[code] + street + kind_zh, f"{romanized} {kind_en}")
        for zh, en, level, scopes in _rows(SCHOOL):
            names = (school[0] + zh, f"{school[1]} {en}")
            b.add(unit, "education", "service", names, level, scopes, (code,), 0.5)
    for i, nth in enumerate(("", "第二", "第三", "第四", "第五"), start=1):
        clinic = (f"{street}{nth}社区健康服务中心", f"{romanized} Community Health Centre")
        suffix = f" No. {i}" if i > 1 else ""
        for zh, en, level, scopes in _rows(CLINIC):
            names = (clinic[0] + zh, f"{clinic[1]}{suffix} {en}")
            b.add(unit, "health", "service", names, level, scopes, (code,), 0.5)
