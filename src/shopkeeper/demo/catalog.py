"""The demo catalog: a few hundred home-and-lifestyle products in a category tree, with
brands, prices in US dollars, some on sale, stock levels (some low, some sold out) and
names in each of the shop's languages. Pure: a seeded `random.Random` in, dicts out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shopkeeper.demo.locales import COUNTRIES, ascii_slug

SHOP_URL = "https://baanliving.example"
CATALOG_CURRENCY = "USD"
LOW_STOCK_MAX = 5  # the default low_stock_threshold
LANGUAGES = ("en", "th", "ro", "nb", "zh")


@dataclass(frozen=True, slots=True)
class Category:
    path: str  # "Bedroom > Bedding > Duvets"
    # The product type in each language: en, th, ro, nb, zh.
    noun: tuple[str, str, str, str, str]
    usd: tuple[float, float]  # price range
    popularity: float  # relative share of shoppers' interest
    materials: tuple[str, ...]
    max_quantity: int = 1  # units people buy at once (glasses come in fours)


# Category path -> (price range in USD, popularity, materials, units people buy at once).
_SHAPES: dict[str, tuple[float, float, float, str, int]] = {
    "Living room > Sofas": (390, 2400, 1.2, "linen velvet leather boucle", 1),
    "Living room > Armchairs": (180, 900, 0.8, "linen velvet rattan", 1),
    "Living room > Coffee tables": (90, 600, 0.9, "oak walnut marble glass", 1),
    "Living room > Shelving": (80, 500, 0.6, "oak pine steel", 1),
    "Bedroom > Beds": (250, 1800, 0.8, "oak teak upholstered steel", 1),
    "Bedroom > Mattresses": (200, 1500, 0.7, "memory-foam latex pocket-spring", 1),
    "Bedroom > Bedding > Duvets": (40, 350, 1.0, "down microfibre wool silk", 2),
    "Bedroom > Bedding > Pillows": (15, 120, 1.1, "down microfibre latex", 4),
    "Bedroom > Bedding > Bed linen": (30, 220, 1.2, "cotton linen satin percale", 3),
    "Kitchen > Cookware > Pans": (20, 180, 1.1, "cast-iron stainless non-stick carbon-steel", 2),
    "Kitchen > Cookware > Pots": (30, 300, 0.8, "cast-iron stainless enamel", 2),
    "Kitchen > Knives": (25, 250, 0.6, "damascus stainless carbon-steel", 2),
    "Kitchen > Small appliances > Coffee makers": (40, 900, 0.9, "stainless black white", 1),
    "Kitchen > Small appliances > Blenders": (35, 400, 0.6, "stainless black white", 1),
    "Kitchen > Tableware > Plates": (6, 45, 0.9, "stoneware porcelain ceramic", 6),
    "Kitchen > Tableware > Glasses": (4, 30, 0.8, "crystal glass recycled-glass", 6),
    "Bathroom > Towels": (8, 60, 1.0, "cotton bamboo linen", 4),
    "Bathroom > Bath mats": (10, 70, 0.5, "cotton bamboo teak", 2),
    "Bathroom > Storage": (50, 450, 0.4, "oak bamboo steel", 1),
    "Decor > Vases": (12, 150, 0.8, "ceramic glass stoneware", 2),
    "Decor > Candles": (8, 60, 1.0, "soy beeswax", 4),
    "Decor > Mirrors": (40, 400, 0.6, "oak brass rattan", 1),
    "Decor > Rugs": (50, 900, 0.9, "wool jute cotton", 1),
    "Decor > Cushions": (10, 60, 1.0, "linen velvet cotton", 4),
    "Decor > Wall art": (20, 300, 0.6, "oak black-frame canvas", 2),
    "Lighting > Ceiling lamps": (40, 500, 0.7, "rattan brass glass paper", 1),
    "Lighting > Floor lamps": (50, 450, 0.6, "brass oak linen", 1),
    "Lighting > Table lamps": (25, 250, 0.8, "ceramic brass glass", 2),
    "Outdoor > Garden furniture": (250, 2200, 0.5, "teak aluminium rattan", 1),
    "Outdoor > Plant pots": (8, 120, 0.8, "terracotta ceramic fibre-clay", 3),
    "Outdoor > Barbecues": (80, 1200, 0.4, "steel cast-iron", 1),
    "Home office > Desks": (120, 900, 0.6, "oak walnut steel", 1),
    "Home office > Office chairs": (90, 900, 0.6, "mesh leather fabric", 1),
    "Storage > Baskets": (10, 80, 0.7, "seagrass rattan cotton-rope", 3),
}
# The product type of each category in en | th | ro | nb | zh.
_NOUNS = {
    "Sofas": "sofa|โซฟา|canapea|sofa|沙发",
    "Armchairs": "armchair|อาร์มแชร์|fotoliu|lenestol|扶手椅",
    "Coffee tables": "coffee table|โต๊ะกลาง|măsuță de cafea|sofabord|茶几",
    "Shelving": "bookcase|ชั้นหนังสือ|bibliotecă|bokhylle|书架",
    "Beds": "bed frame|เตียง|pat|sengeramme|床架",
    "Mattresses": "mattress|ที่นอน|saltea|madrass|床垫",
    "Duvets": "duvet|ผ้านวม|pilotă|dyne|羽绒被",
    "Pillows": "pillow|หมอน|pernă|pute|枕头",
    "Bed linen": "bed linen set|ชุดผ้าปูที่นอน|lenjerie de pat|sengesett|床品套件",
    "Pans": "frying pan|กระทะ|tigaie|stekepanne|煎锅",
    "Pots": "casserole pot|หม้อ|oală|gryte|汤锅",
    "Knives": "chef's knife|มีดเชฟ|cuțit de bucătar|kokkekniv|厨师刀",
    "Coffee makers": "coffee maker|เครื่องชงกาแฟ|espressor|kaffetrakter|咖啡机",
    "Blenders": "blender|เครื่องปั่น|blender|blender|搅拌机",
    "Plates": "dinner plate|จาน|farfurie|middagstallerken|餐盘",
    "Glasses": "glass|แก้วน้ำ|pahar|glass|玻璃杯",
    "Towels": "bath towel|ผ้าเช็ดตัว|prosop|badehåndkle|浴巾",
    "Bath mats": "bath mat|พรมเช็ดเท้า|covoraș de baie|badematte|浴室地垫",
    "Storage": "bathroom cabinet|ตู้ห้องน้ำ|dulap de baie|baderomsskap|浴室柜",
    "Vases": "vase|แจกัน|vază|vase|花瓶",
    "Candles": "scented candle|เทียนหอม|lumânare parfumată|duftlys|香薰蜡烛",
    "Mirrors": "wall mirror|กระจกแขวนผนัง|oglindă|speil|挂镜",
    "Rugs": "rug|พรม|covor|teppe|地毯",
    "Cushions": "cushion cover|ปลอกหมอนอิง|față de pernă|putetrekk|靠垫套",
    "Wall art": "framed print|ภาพติดผนัง|tablou|innrammet plakat|装饰画",
    "Ceiling lamps": "pendant lamp|โคมไฟเพดาน|lustră|taklampe|吊灯",
    "Floor lamps": "floor lamp|โคมไฟตั้งพื้น|lampadar|gulvlampe|落地灯",
    "Table lamps": "table lamp|โคมไฟตั้งโต๊ะ|veioză|bordlampe|台灯",
    "Garden furniture": "garden lounge set|ชุดโต๊ะสนาม|set mobilier grădină|hagesett|户外桌椅",
    "Plant pots": "plant pot|กระถางต้นไม้|ghiveci|blomsterpotte|花盆",
    "Barbecues": "barbecue grill|เตาปิ้งย่าง|grătar|grill|烧烤炉",
    "Desks": "desk|โต๊ะทำงาน|birou|skrivebord|书桌",
    "Office chairs": "office chair|เก้าอี้สำนักงาน|scaun de birou|kontorstol|办公椅",
    "Baskets": "storage basket|ตะกร้าเก็บของ|coș de depozitare|oppbevaringskurv|收纳篮",
}


def _category(path: str) -> Category:
    low, high, popularity, materials, units = _SHAPES[path]
    en, th, ro, nb, zh = _NOUNS[path.split(" > ")[-1]].split("|")
    return Category(
        path, (en, th, ro, nb, zh), (low, high), popularity, tuple(materials.split()), units
    )


CATEGORIES: tuple[Category, ...] = tuple(_category(path) for path in _SHAPES)

# Brand -> the top-level departments it sells in.
BRANDS: dict[str, tuple[str, ...]] = {
    "Nordhem": ("Living room", "Bedroom", "Home office", "Storage"),
    "Baan Suay": ("Living room", "Decor", "Outdoor", "Storage"),
    "Casa Lumo": ("Lighting", "Decor"),
    "Fjordline": ("Bedroom", "Bathroom", "Decor"),
    "Maison Brise": ("Living room", "Decor", "Bedroom"),
    "Hearthwood": ("Kitchen", "Outdoor"),
    "Kiri Living": ("Kitchen", "Bathroom", "Storage"),
    "Carpathia Home": ("Bedroom", "Kitchen", "Decor"),
    "Lotus & Teak": ("Living room", "Outdoor", "Bathroom"),
    "Oslo Form": ("Home office", "Lighting", "Living room"),
    "Shan Studio": ("Kitchen", "Decor", "Lighting"),
    "Sleepwell": ("Bedroom",),
}

# Series names read well in every language, so they are not translated.
SERIES = (
    "Lund",
    "Aria",
    "Siam",
    "Bora",
    "Kyoto",
    "Mira",
    "Tulip",
    "Nara",
    "Vinter",
    "Oak & Co",
    "Haven",
    "Luna",
    "Sora",
    "Fjell",
    "Dalia",
    "Mekong",
    "Brisa",
    "Solis",
    "Arktis",
    "Lotus",
)

# Colour names in en | th | ro | nb | zh.
_COLOR_NAMES = {
    "natural": "natural|สีธรรมชาติ|natural|natur|原色",
    "white": "white|สีขาว|alb|hvit|白色",
    "black": "black|สีดำ|negru|svart|黑色",
    "grey": "grey|สีเทา|gri|grå|灰色",
    "sage": "sage|สีเขียวเสจ|verde salvie|salviegrønn|鼠尾草绿",
    "terracotta": "terracotta|สีอิฐ|teracotă|terrakotta|陶土色",
    "navy": "navy|สีกรมท่า|bleumarin|marineblå|藏青色",
    "sand": "sand|สีทราย|nisip|sand|沙色",
    "walnut": "walnut|สีวอลนัท|nuc|valnøtt|胡桃色",
}
COLORS = tuple(_COLOR_NAMES)


def _brand_for(rng: random.Random, department: str) -> str:
    fitting = [brand for brand, where in BRANDS.items() if department in where]
    return rng.choice(fitting)


def _price(rng: random.Random, low: float, high: float) -> float:
    # Log-uniform: as many cheap as dear products, the way catalogs spread.
    value = low * float((high / low) ** rng.random())
    return round(max(1, round(value)) - 0.01, 2)


def _stock(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.07:
        return 0  # sold out: viewed and wished for, not bought (back-in-stock material)
    if roll < 0.17:
        return rng.randint(1, LOW_STOCK_MAX)
    return int(rng.triangular(6, 400, 40))


def _names(series: str, color: str, material: str, category: Category) -> dict[str, str]:
    material_text = material.replace("-", " ")
    en, th, ro, nb, zh = category.noun
    c_en, c_th, c_ro, c_nb, c_zh = _COLOR_NAMES[color].split("|")
    return {
        "en": f"{series} {material_text} {en}, {c_en}",
        "th": f"{th} {series} ({material_text}, {c_th})",
        "ro": f"{ro.capitalize()} {series} {material_text}, {c_ro}",
        "nb": f"{series} {nb} i {material_text}, {c_nb}",
        # Chinese punctuation, on purpose.
        "zh": f"{series} {zh}（{material_text}，{c_zh}）",  # noqa: RUF001
    }


CATEGORY_BY_PATH = {category.path: category for category in CATEGORIES}


def generate_catalog(rng: random.Random, size: int = 360) -> list[dict[str, object]]:
    """`size` products spread over the categories by popularity, as product dicts in the
    shape `catalog.products.parse_product` returns (ready for `upsert_products`)."""
    weights = [category.popularity for category in CATEGORIES]
    total = sum(weights)
    counts = [max(3, round(size * w / total)) for w in weights]
    products: list[dict[str, object]] = []
    seen_names: set[str] = set()
    number = 10_000
    for category, count in zip(CATEGORIES, counts, strict=True):
        department = category.path.split(" > ")[0]
        code = "".join(word[0] for word in category.path.upper().split(" > ")[-1].split())
        for index in range(count):
            while True:
                series = rng.choice(SERIES)
                color = rng.choice(COLORS)
                material = rng.choice(category.materials)
                names = _names(series, color, material, category)
                if names["en"] not in seen_names:
                    seen_names.add(names["en"])
                    break
            number += rng.randint(1, 37)
            product_id = str(number)
            slug = "-".join(ascii_slug(names["en"]).split())
            price = _price(rng, *category.usd)
            sale = None
            if rng.random() < 0.15:
                sale = round(price * (1 - rng.choice((0.1, 0.15, 0.2, 0.25, 0.3, 0.4))), 2)
            locales = {}
            for country in COUNTRIES:
                lang = country.locale.split("-")[0]
                locales[country.locale] = {
                    "name": names[country.language],
                    "url": f"{SHOP_URL}/{lang}/p/{slug}-{product_id}",
                }
            products.append(
                {
                    "id": product_id,
                    "sku": f"{code}-{material[:3].upper()}-{index + 1:03d}",
                    "name": names["en"],
                    "description": (
                        f"{series} {category.noun[0]} in {material.replace('-', ' ')}, "
                        f"{color}. Designed for everyday use; easy care."
                    ),
                    "category": category.path,
                    "brand": _brand_for(rng, department),
                    "price": price,
                    "sale_price": sale,
                    "currency": CATALOG_CURRENCY,
                    "stock_quantity": _stock(rng),
                    "url": f"{SHOP_URL}/en/p/{slug}-{product_id}",
                    "image_url": f"{SHOP_URL}/images/{product_id}.jpg",
                    "attributes": {
                        "color": color,
                        "material": material.replace("-", " "),
                        "series": series,
                    },
                    "locales": locales,
                }
            )
    return products
