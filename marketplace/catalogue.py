"""The starting catalogue: the eight national hubs, their clusters, and the compute classes.

Loaded by a data migration (with historical models) and by test fixtures after a
transactional test has emptied the tables; afterwards the regulator edits the rows.
"""

from __future__ import annotations

# (code, English, Chinese, cities of the wider region — the 5 ms circle)
HUBS = [
    ("JJJ", "Beijing-Tianjin-Hebei", "京津冀", [
        "Beijing", "北京", "Tianjin", "天津", "Shijiazhuang", "石家庄", "Baoding", "保定", "Langfang", "廊坊",
        "Tangshan", "唐山", "Chengde", "承德", "Qinhuangdao", "秦皇岛", "Handan", "邯郸", "Xingtai", "邢台",
        "Cangzhou", "沧州", "Hengshui", "衡水", "Xiong'an", "雄安",
    ]),
    ("YRD", "Yangtze River Delta", "长三角", [
        "Shanghai", "上海", "Nanjing", "南京", "Suzhou", "苏州", "Wuxi", "无锡", "Changzhou", "常州",
        "Nantong", "南通", "Hangzhou", "杭州", "Ningbo", "宁波", "Jiaxing", "嘉兴", "Huzhou", "湖州",
        "Shaoxing", "绍兴", "Hefei", "合肥", "Wuhu", "芜湖", "Ma'anshan", "马鞍山", "Yangzhou", "扬州",
        "Zhenjiang", "镇江",
    ]),
    ("GBA", "Guangdong-Hong Kong-Macao Greater Bay Area", "粤港澳大湾区", [
        "Guangzhou", "广州", "Shenzhen", "深圳", "Zhuhai", "珠海", "Foshan", "佛山", "Dongguan", "东莞",
        "Zhongshan", "中山", "Jiangmen", "江门", "Huizhou", "惠州", "Zhaoqing", "肇庆", "Hong Kong", "香港",
        "Macao", "Macau", "澳门", "Shaoguan", "韶关",
    ]),
    ("CY", "Chengdu-Chongqing", "成渝", [
        "Chengdu", "成都", "Chongqing", "重庆", "Mianyang", "绵阳", "Deyang", "德阳", "Leshan", "乐山",
        "Meishan", "眉山", "Ziyang", "资阳", "Suining", "遂宁", "Neijiang", "内江", "Zigong", "自贡",
        "Luzhou", "泸州", "Yibin", "宜宾",
    ]),
    ("NM", "Inner Mongolia", "内蒙古", [
        "Hohhot", "呼和浩特", "Horinger", "和林格尔", "Baotou", "包头", "Ordos", "鄂尔多斯", "Ulanqab", "乌兰察布",
    ]),
    ("GZ", "Guizhou", "贵州", [
        "Guiyang", "贵阳", "Gui'an", "贵安", "Anshun", "安顺", "Zunyi", "遵义", "Liupanshui", "六盘水", "Bijie", "毕节",
    ]),
    ("GS", "Gansu", "甘肃", [
        "Lanzhou", "兰州", "Qingyang", "庆阳", "Tianshui", "天水", "Pingliang", "平凉", "Baiyin", "白银",
        "Wuwei", "武威", "Zhangye", "张掖", "Jiuquan", "酒泉", "Jiayuguan", "嘉峪关", "Dingxi", "定西",
    ]),
    ("NX", "Ningxia", "宁夏", [
        "Yinchuan", "银川", "Zhongwei", "中卫", "Shizuishan", "石嘴山", "Wuzhong", "吴忠", "Guyuan", "固原",
    ]),
]

# (hub, code, English, Chinese, cities the cluster is in — the 1 ms circle)
CLUSTERS = [
    ("JJJ", "JJJ-ZJK", "Zhangjiakou", "张家口", ["Zhangjiakou", "张家口"]),
    ("YRD", "YRD-EGZ", "Eco-Green Integration Demonstration Zone", "长三角生态绿色一体化发展示范区",
     ["Shanghai", "上海", "Suzhou", "苏州", "Jiaxing", "嘉兴"]),
    ("YRD", "YRD-WH", "Wuhu", "芜湖", ["Wuhu", "芜湖"]),
    ("GBA", "GBA-SG", "Shaoguan", "韶关", ["Shaoguan", "韶关"]),
    ("CY", "CY-TF", "Tianfu", "天府", ["Chengdu", "成都", "Tianfu", "天府"]),
    ("CY", "CY-CQ", "Chongqing", "重庆", ["Chongqing", "重庆"]),
    ("NM", "NM-HLG", "Horinger", "和林格尔", ["Horinger", "和林格尔", "Hohhot", "呼和浩特"]),
    ("GZ", "GZ-GA", "Gui'an", "贵安", ["Gui'an", "贵安", "Guiyang", "贵阳"]),
    ("GS", "GS-QY", "Qingyang", "庆阳", ["Qingyang", "庆阳"]),
    ("NX", "NX-ZW", "Zhongwei", "中卫", ["Zhongwei", "中卫"]),
]

CLASSES = [
    {
        "code": "CPU", "category": "general", "reference_precision": "fp32", "min_memory_gb": 256,
        "min_interconnect_gbps": 25, "name_en": "General-purpose CPU", "name_zh": "通用 CPU 算力",
        "description_en": "Two-socket CPU server nodes with at least 256 GB of memory and 25 Gbit/s networking; measured at FP32.",
        "description_zh": "双路 CPU 服务器节点，内存不少于 256 GB，网络不低于 25 Gbit/s；按 FP32 计量。",
    },
    {
        "code": "AI80", "category": "ai", "reference_precision": "fp16", "min_memory_gb": 80,
        "min_interconnect_gbps": 200, "name_en": "AI training, 80 GB+", "name_zh": "AI 训练（80 GB 以上）",
        "description_en": "Training-grade accelerators with at least 80 GB of device memory and 200 Gbit/s of scale-out bandwidth; measured at dense FP16/BF16.",
        "description_zh": "训练级加速卡，显存不少于 80 GB，横向扩展带宽不低于 200 Gbit/s；按稠密 FP16/BF16 计量。",
    },
    {
        "code": "AI24", "category": "ai", "reference_precision": "fp16", "min_memory_gb": 24,
        "min_interconnect_gbps": 25, "name_en": "AI inference, 24 GB+", "name_zh": "AI 推理（24 GB 以上）",
        "description_en": "Inference-grade accelerators with at least 24 GB of device memory; measured at dense FP16/BF16.",
        "description_zh": "推理级加速卡，显存不少于 24 GB；按稠密 FP16/BF16 计量。",
    },
    {
        "code": "HPC64", "category": "hpc", "reference_precision": "fp64", "min_memory_gb": 32,
        "min_interconnect_gbps": 100, "name_en": "HPC, double precision", "name_zh": "高性能计算（双精度）",
        "description_en": "Devices for scientific computing with at least 32 GB of memory and 100 Gbit/s interconnect; measured at FP64.",
        "description_zh": "面向科学计算的设备，内存不少于 32 GB，互联不低于 100 Gbit/s；按 FP64 计量。",
    },
]


def catalogue_load(*, hub_model, cluster_model, class_model) -> None:
    """Create the rows that are missing; never change rows the regulator may have edited."""
    hubs = {}
    for order, (code, name_en, name_zh, region) in enumerate(HUBS):
        hubs[code], _ = hub_model.objects.get_or_create(
            code=code, defaults={"name_en": name_en, "name_zh": name_zh, "region_cities": region, "sort_order": order}
        )
    for hub_code, code, name_en, name_zh, cities in CLUSTERS:
        cluster_model.objects.get_or_create(
            code=code, defaults={"hub": hubs[hub_code], "name_en": name_en, "name_zh": name_zh, "cities": cities}
        )
    for row in CLASSES:
        class_model.objects.get_or_create(code=row["code"], defaults={k: v for k, v in row.items() if k != "code"})
