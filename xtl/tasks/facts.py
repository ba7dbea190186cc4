"""``world-facts``: multilingual factual recall, written for xtl (public knowledge, no dataset).

The capital and the continent of 67 countries, asked in English and twelve other languages of
different resource levels and scripts (French, Spanish, German, Italian, Portuguese, Swahili,
Indonesian; Chinese, Japanese, Russian, Arabic, Hindi). Each prompt is a two-shot fill-in in one
language, with no articles to inflect::

    Pays : Canada
    Capitale : Ottawa

    Pays : Kenya
    Capitale : Nairobi

    Pays : Japon
    Capitale :

The gold is the answer in the prompt's language and script, with its other spellings as aliases
("Lisboa" for Portuguese, "Moscou"/"Moscovo"; Hindi spellings with and without the nukta);
scoring as XQuAD (a case-insensitive substring). The names in the five non-Latin-script
languages are CLDR's (Unicode's locale data, read with Babel 2.18): country and continent names,
and the time-zone city names that are capitals (``tests/test_tasks.py`` checks them against the
installed Babel); the capitals CLDR has no time zone for, a few more natural country names
(США for the United States in Russian) and a few common variant spellings were added by hand.
Countries alternate between the ``sample`` and ``unseen`` halves.
``en2x`` transplants from the English question into the other language's (scored in that
language); ``x2en`` the reverse (scored in English).

Example:
    >>> task = xtl.tasks.get("world-facts")
    >>> item = task.items("sw")[0]
    >>> item.target.splitlines()[-1], item.gold
    ('Mji mkuu:', 'Paris')
"""

from __future__ import annotations

import argparse

import pandas as pd

from xtl.errors import InputError
from xtl.spec import TransplantSpec
from xtl.tasks.base import SPLITS, Record, Task

LATIN = ("en", "fr", "es", "de", "it", "pt", "sw", "id")
NON_LATIN = ("zh", "ja", "ru", "ar", "hi")
LANGUAGES = LATIN + NON_LATIN

# field names per language: country, capital, continent
FIELDS = {
    "en": ("Country", "Capital", "Continent"),
    "fr": ("Pays", "Capitale", "Continent"),
    "es": ("País", "Capital", "Continente"),
    "de": ("Land", "Hauptstadt", "Kontinent"),
    "it": ("Paese", "Capitale", "Continente"),
    "pt": ("País", "Capital", "Continente"),
    "sw": ("Nchi", "Mji mkuu", "Bara"),
    "id": ("Negara", "Ibu kota", "Benua"),
    "zh": ("国家", "首都", "大洲"),
    "ja": ("国", "首都", "大陸"),
    "ru": ("Страна", "Столица", "Континент"),
    "ar": ("الدولة", "العاصمة", "القارة"),
    "hi": ("देश", "राजधानी", "महाद्वीप"),
}
# between a field and its value: French puts a space before the colon, Chinese and Japanese
# write a full-width colon and no space
SEPARATOR = {"fr": " : ", "zh": "：", "ja": "："}
NUKTA = "\u093c"

CONTINENTS = {  # code -> names per language (LANGUAGES order); "/" separates accepted spellings
    "AF": "Africa|Afrique|África/Africa|Afrika|Africa|África/Africa|Afrika|Afrika|非洲|アフリカ|Африка|أفريقيا/إفريقيا|अफ़्रीका",
    "AS": "Asia|Asie|Asia|Asien|Asia|Ásia/Asia|Asia|Asia|亚洲|アジア|Азия|آسيا|एशिया",
    "EU": "Europe|Europe|Europa|Europa|Europa|Europa|Ulaya/Uropa|Eropa|欧洲|ヨーロッパ/欧州|Европа|أوروبا|यूरोप",
    "NA": (
        "North America|Amérique du Nord|América del Norte/Norteamérica|Nordamerika|"
        "America del Nord/Nordamerica|América do Norte|Amerika Kaskazini|Amerika Utara|"
        "北美洲/北美|北アメリカ/北米|Северная Америка|أمريكا الشمالية|उत्तर अमेरिका/उत्तरी अमेरिका"
    ),
    "SA": (
        "South America|Amérique du Sud|América del Sur/Sudamérica/Suramérica|Südamerika|"
        "America del Sud/Sudamerica|América do Sul|Amerika Kusini|Amerika Selatan|"
        "南美洲/南美|南アメリカ/南米|Южная Америка|أمريكا الجنوبية|दक्षिण अमेरिका/दक्षिणी अमेरिका"
    ),
    "OC": "Oceania|Océanie|Oceanía|Ozeanien|Oceania|Oceania|Oceania/Oseania|Oseania|大洋洲|オセアニア|Океания|أوقيانوسيا|ओशिआनिया/ओशिनिया/ओशेनिया",
}

# The two worked examples in every prompt (not among the questions).
SHOTS = (
    (
        "Canada|Canada|Canadá|Kanada|Canada|Canadá|Kanada|Kanada|加拿大|カナダ|Канада|كندا|कनाडा",
        "Ottawa|Ottawa|Ottawa|Ottawa|Ottawa|Ottawa|Ottawa|Ottawa|渥太华|オタワ|Оттава|أوتاوا|ओटावा",
        "NA",
    ),
    (
        "Kenya|Kenya|Kenia|Kenia|Kenya|Quênia/Quénia|Kenya|Kenya|肯尼亚|ケニア|Кения|كينيا|केन्या",
        "Nairobi|Nairobi|Nairobi|Nairobi|Nairobi|Nairobi|Nairobi|Nairobi|内罗毕|ナイロビ|Найроби|نيروبي|नैरोबी",
        "AF",
    ),
)

# country names (LATIN order) ; capital (one name for all, or one per language) ; continent
# (two codes for a country on two continents: the first is the gold, both are accepted)
COUNTRIES = """
France|France|Francia|Frankreich|Francia|França|Ufaransa|Prancis ; Paris|Paris|París|Paris|Parigi|Paris|Paris|Paris ; EU
Germany|Allemagne|Alemania|Deutschland|Germania|Alemanha|Ujerumani|Jerman ; Berlin|Berlin|Berlín|Berlin|Berlino|Berlim|Berlin|Berlin ; EU
Spain|Espagne|España|Spanien|Spagna|Espanha|Uhispania|Spanyol ; Madrid ; EU
Italy|Italie|Italia|Italien|Italia|Itália|Italia|Italia ; Rome|Rome|Roma|Rom|Roma|Roma|Roma/Rome|Roma ; EU
Portugal|Portugal|Portugal|Portugal|Portogallo|Portugal|Ureno|Portugal ; Lisbon|Lisbonne|Lisboa|Lissabon|Lisbona|Lisboa|Lisbon/Lisboa|Lisboa/Lisbon ; EU
United Kingdom|Royaume-Uni|Reino Unido|Vereinigtes Königreich|Regno Unito|Reino Unido|Uingereza|Britania Raya ; London|Londres|Londres|London|Londra|Londres|London/Londoni|London ; EU
Russia|Russie|Rusia|Russland|Russia|Rússia|Urusi|Rusia ; Moscow|Moscou|Moscú/Moscu|Moskau|Mosca|Moscou/Moscovo|Moscow/Moskva|Moskwa/Moskow/Moscow ; EU/AS
China|Chine|China|China|Cina|China|China|Tiongkok ; Beijing|Pékin/Beijing|Pekín/Beijing|Peking/Beijing|Pechino|Pequim|Beijing|Beijing ; AS
Japan|Japon|Japón|Japan|Giappone|Japão|Japani|Jepang ; Tokyo|Tokyo|Tokio|Tokio|Tokyo|Tóquio|Tokyo|Tokyo/Tokio ; AS
India|Inde|India|Indien|India|Índia|India|India ; New Delhi/Delhi|New Delhi/Delhi|Nueva Delhi/Delhi|Neu-Delhi/Delhi|Nuova Delhi/Delhi|Nova Deli/Nova Délhi/Delhi|New Delhi/Delhi|New Delhi/Delhi ; AS
Brazil|Brésil|Brasil|Brasilien|Brasile|Brasil|Brazil|Brasil ; Brasília/Brasilia ; SA
Argentina|Argentine|Argentina|Argentinien|Argentina|Argentina|Ajentina|Argentina ; Buenos Aires ; SA
Mexico|Mexique|México|Mexiko|Messico|México|Meksiko|Meksiko ; Mexico City|Mexico/Mexico City|Ciudad de México/Ciudad de Mexico|Mexiko-Stadt|Città del Messico|Cidade do México|Mexico City/Jiji la Mexico|Kota Meksiko/Mexico City ; NA
United States|États-Unis|Estados Unidos|Vereinigte Staaten|Stati Uniti|Estados Unidos|Marekani|Amerika Serikat ; Washington ; NA
Egypt|Égypte|Egipto|Ägypten|Egitto|Egito|Misri|Mesir ; Cairo|Le Caire/Caire|El Cairo/Cairo|Kairo|Il Cairo/Cairo|Cairo|Cairo/Kairo|Kairo/Cairo ; AF
Nigeria|Nigeria|Nigeria|Nigeria|Nigeria|Nigéria|Nigeria|Nigeria ; Abuja ; AF
South Africa|Afrique du Sud|Sudáfrica|Südafrika|Sudafrica|África do Sul|Afrika Kusini|Afrika Selatan ; Pretoria ; AF
Australia|Australie|Australia|Australien|Australia|Austrália|Australia|Australia ; Canberra ; OC
Indonesia|Indonésie|Indonesia|Indonesien|Indonesia|Indonésia|Indonesia|Indonesia ; Jakarta|Jakarta|Yakarta/Jakarta|Jakarta|Giacarta/Jakarta|Jacarta/Jakarta|Jakarta|Jakarta ; AS
Turkey|Turquie|Turquía|Türkei|Turchia|Turquia|Uturuki|Turki ; Ankara ; AS/EU
Greece|Grèce|Grecia|Griechenland|Grecia|Grécia|Ugiriki|Yunani ; Athens|Athènes|Atenas|Athen|Atene|Atenas|Athens/Athene|Athena/Athens ; EU
Poland|Pologne|Polonia|Polen|Polonia|Polônia/Polónia|Polandi|Polandia ; Warsaw|Varsovie|Varsovia|Warschau|Varsavia|Varsóvia|Warsaw/Warszawa|Warsawa/Warsaw ; EU
Netherlands|Pays-Bas|Países Bajos|Niederlande|Paesi Bassi|Países Baixos|Uholanzi|Belanda ; Amsterdam|Amsterdam|Ámsterdam/Amsterdam|Amsterdam|Amsterdam|Amsterdã/Amesterdão/Amsterdam|Amsterdam|Amsterdam ; EU
Belgium|Belgique|Bélgica|Belgien|Belgio|Bélgica|Ubelgiji|Belgia ; Brussels|Bruxelles|Bruselas|Brüssel|Bruxelles|Bruxelas|Brussels|Brussel/Brussels ; EU
Sweden|Suède|Suecia|Schweden|Svezia|Suécia|Uswidi|Swedia ; Stockholm|Stockholm|Estocolmo|Stockholm|Stoccolma|Estocolmo|Stockholm|Stockholm ; EU
Norway|Norvège|Noruega|Norwegen|Norvegia|Noruega|Norwei|Norwegia ; Oslo ; EU
Denmark|Danemark|Dinamarca|Dänemark|Danimarca|Dinamarca|Denmark|Denmark ; Copenhagen|Copenhague|Copenhague|Kopenhagen|Copenaghen|Copenhague/Copenhaga|Copenhagen|Kopenhagen/Copenhagen ; EU
Finland|Finlande|Finlandia|Finnland|Finlandia|Finlândia|Ufini|Finlandia ; Helsinki ; EU
Austria|Autriche|Austria|Österreich|Austria|Áustria|Austria|Austria ; Vienna|Vienne|Viena|Wien|Vienna|Viena|Vienna/Viena|Wina/Vienna ; EU
Switzerland|Suisse|Suiza|Schweiz|Svizzera|Suíça|Uswisi|Swiss ; Bern/Berne|Berne/Bern|Berna|Bern|Berna|Berna|Bern/Berne|Bern ; EU
Ireland|Irlande|Irlanda|Irland|Irlanda|Irlanda|Ayalandi|Irlandia ; Dublin|Dublin|Dublín/Dublin|Dublin|Dublino|Dublin|Dublin|Dublin ; EU
Hungary|Hongrie|Hungría|Ungarn|Ungheria|Hungria|Hungaria|Hongaria ; Budapest ; EU
Czech Republic|Tchéquie|Chequia|Tschechien|Cechia|Chéquia|Ucheki|Ceko ; Prague|Prague|Praga|Prag|Praga|Praga|Prague/Praha|Praha/Prague ; EU
Ukraine|Ukraine|Ucrania|Ukraine|Ucraina|Ucrânia|Ukraine|Ukraina ; Kyiv/Kiev|Kyiv/Kiev|Kiev/Kyiv|Kiew/Kyjiw/Kyiv|Kiev/Kyiv|Kiev/Kyiv/Quieve|Kyiv/Kiev|Kyiv/Kiev ; EU
Iran|Iran|Irán|Iran|Iran|Irã/Irão|Iran|Iran ; Tehran|Téhéran|Teherán|Teheran|Teheran|Teerã/Teerão|Tehran|Teheran/Tehran ; AS
Iraq|Irak|Irak|Irak|Iraq|Iraque|Iraki|Irak ; Baghdad|Bagdad|Bagdad|Bagdad|Baghdad|Bagdá/Bagdade|Baghdad|Bagdad/Baghdad ; AS
Saudi Arabia|Arabie saoudite|Arabia Saudita|Saudi-Arabien|Arabia Saudita|Arábia Saudita|Saudia|Arab Saudi ; Riyadh|Riyad/Riad|Riad|Riad|Riad|Riade/Riad|Riyadh|Riyadh/Riyad ; AS
Pakistan|Pakistan|Pakistán|Pakistan|Pakistan|Paquistão|Pakistani|Pakistan ; Islamabad|Islamabad|Islamabad|Islamabad|Islamabad|Islamabad/Islamabade|Islamabad|Islamabad ; AS
Thailand|Thaïlande|Tailandia|Thailand|Thailandia|Tailândia|Tailandi|Thailand ; Bangkok|Bangkok|Bangkok|Bangkok|Bangkok|Banguecoque/Bangkok|Bangkok|Bangkok ; AS
Vietnam|Viêt Nam/Vietnam|Vietnam|Vietnam|Vietnam|Vietnã/Vietname|Vietnam|Vietnam ; Hanoi|Hanoï/Hanoi|Hanói/Hanoi|Hanoi|Hanoi|Hanói/Hanoi|Hanoi|Hanoi ; AS
Philippines|Philippines|Filipinas|Philippinen|Filippine|Filipinas|Ufilipino|Filipina ; Manila|Manille|Manila|Manila|Manila|Manila|Manila|Manila ; AS
Malaysia|Malaisie|Malasia|Malaysia|Malesia|Malásia|Malaysia|Malaysia ; Kuala Lumpur ; AS
South Korea|Corée du Sud|Corea del Sur|Südkorea|Corea del Sud|Coreia do Sul|Korea Kusini|Korea Selatan ; Seoul|Séoul|Seúl|Seoul|Seul|Seul|Seoul|Seoul ; AS
Chile|Chili|Chile|Chile|Cile|Chile|Chile|Chili ; Santiago ; SA
Peru|Pérou|Perú|Peru|Perù|Peru|Peru|Peru ; Lima ; SA
Colombia|Colombie|Colombia|Kolumbien|Colombia|Colômbia|Kolombia|Kolombia ; Bogotá/Bogota ; SA
Venezuela|Venezuela|Venezuela|Venezuela|Venezuela|Venezuela|Venezuela|Venezuela ; Caracas ; SA
Cuba|Cuba|Cuba|Kuba|Cuba|Cuba|Kuba|Kuba ; Havana|La Havane/Havane|La Habana/Habana|Havanna|L'Avana/Avana|Havana|Havana|Havana ; NA
Morocco|Maroc|Marruecos|Marokko|Marocco|Marrocos|Moroko|Maroko ; Rabat ; AF
Algeria|Algérie|Argelia|Algerien|Algeria|Argélia|Aljeria|Aljazair ; Algiers|Alger|Argel|Algier|Algeri|Argel|Algiers/Aljiers|Aljir/Algiers ; AF
Ethiopia|Éthiopie|Etiopía|Äthiopien|Etiopia|Etiópia|Ethiopia|Etiopia ; Addis Ababa/Addis|Addis-Abeba/Addis|Adís Abeba/Addis|Addis Abeba/Addis|Addis Abeba/Addis|Adis Abeba/Addis|Addis Ababa/Addis|Addis Ababa/Addis ; AF
Ghana|Ghana|Ghana|Ghana|Ghana|Gana|Ghana|Ghana ; Accra|Accra|Acra/Accra|Accra|Accra|Acra/Accra|Accra/Akra|Accra ; AF
Tanzania|Tanzanie|Tanzania|Tansania|Tanzania|Tanzânia|Tanzania|Tanzania ; Dodoma ; AF
Uganda|Ouganda|Uganda|Uganda|Uganda|Uganda|Uganda|Uganda ; Kampala ; AF
Senegal|Sénégal|Senegal|Senegal|Senegal|Senegal|Senegali|Senegal ; Dakar|Dakar|Dakar|Dakar|Dakar|Dacar/Dakar|Dakar|Dakar ; AF
New Zealand|Nouvelle-Zélande|Nueva Zelanda|Neuseeland|Nuova Zelanda|Nova Zelândia|Nyuzilandi|Selandia Baru ; Wellington ; OC
Bangladesh|Bangladesh|Bangladés|Bangladesch|Bangladesh|Bangladesh|Bangladesh|Bangladesh ; Dhaka|Dacca/Dhaka|Daca/Dhaka|Dhaka|Dacca/Dhaka|Daca/Dhaka|Dhaka|Dhaka ; AS
Afghanistan|Afghanistan|Afganistán|Afghanistan|Afghanistan|Afeganistão|Afghanistan|Afganistan ; Kabul|Kaboul|Kabul|Kabul|Kabul|Cabul|Kabul|Kabul ; AS
Nepal|Népal|Nepal|Nepal|Nepal|Nepal|Nepal|Nepal ; Kathmandu|Katmandou|Katmandú|Kathmandu|Katmandu|Catmandu|Kathmandu|Kathmandu ; AS
Romania|Roumanie|Rumania|Rumänien|Romania|Romênia/Roménia|Romania|Rumania ; Bucharest|Bucarest|Bucarest|Bukarest|Bucarest|Bucareste|Bucharest|Bukares ; EU
Bulgaria|Bulgarie|Bulgaria|Bulgarien|Bulgaria|Bulgária|Bulgaria|Bulgaria ; Sofia|Sofia|Sofía/Sofia|Sofia|Sofia|Sófia/Sofia|Sofia|Sofia ; EU
Serbia|Serbie|Serbia|Serbien|Serbia|Sérvia|Serbia|Serbia ; Belgrade|Belgrade|Belgrado|Belgrad|Belgrado|Belgrado|Belgrade|Beograd/Belgrade ; EU
Croatia|Croatie|Croacia|Kroatien|Croazia|Croácia|Kroatia|Kroasia ; Zagreb ; EU
Iceland|Islande|Islandia|Island|Islanda|Islândia|Aisilandi|Islandia ; Reykjavík/Reykjavik ; EU
Mongolia|Mongolie|Mongolia|Mongolei|Mongolia|Mongólia|Mongolia|Mongolia ; Ulaanbaatar/Ulan Bator|Oulan-Bator/Ulaanbaatar|Ulán Bator/Ulan Bator/Ulaanbaatar|Ulaanbaatar/Ulan Bator|Ulan Bator/Ulaanbaatar|Ulan Bator/Ulaanbaatar|Ulaanbaatar/Ulan Bator|Ulaanbaatar/Ulan Bator ; AS
Cameroon|Cameroun|Camerún|Kamerun|Camerun|Camarões|Kamerun|Kamerun ; Yaoundé/Yaounde|Yaoundé/Yaounde|Yaundé/Yaoundé/Yaounde|Jaunde/Yaoundé/Yaounde|Yaoundé/Yaounde|Iaundé/Yaoundé/Yaounde|Yaoundé/Yaounde|Yaoundé/Yaounde ; AF
Jamaica|Jamaïque|Jamaica|Jamaika|Giamaica|Jamaica|Jamaika|Jamaika ; Kingston ; NA
"""

# the same countries in NON_LATIN order: English name ; country names ; capitals
NON_LATIN_COUNTRIES = """
France ; 法国|フランス|Франция|فرنسا|फ़्रांस ; 巴黎|パリ|Париж|باريس|पेरिस
Germany ; 德国|ドイツ|Германия|ألمانيا|जर्मनी ; 柏林|ベルリン|Берлин|برلين|बर्लिन
Spain ; 西班牙|スペイン|Испания|إسبانيا|स्पेन ; 马德里|マドリード/マドリッド|Мадрид|مدريد|मैड्रिड/मेड्रिड
Italy ; 意大利|イタリア|Италия|إيطاليا|इटली ; 罗马|ローマ|Рим|روما|रोम
Portugal ; 葡萄牙|ポルトガル|Португалия|البرتغال|पुर्तगाल ; 里斯本|リスボン|Лиссабон|لشبونة|लिस्बन
United Kingdom ; 英国|イギリス|Великобритания|المملكة المتحدة|यूनाइटेड किंगडम ; 伦敦|ロンドン|Лондон|لندن|लंदन
Russia ; 俄罗斯|ロシア|Россия|روسيا|रूस ; 莫斯科|モスクワ|Москва|موسكو|मॉस्को/मास्को
China ; 中国|中国|Китай|الصين|चीन ; 北京|北京|Пекин|بكين|बीजिंग
Japan ; 日本|日本|Япония|اليابان|जापान ; 东京|東京|Токио|طوكيو|टोक्यो/तोक्यो
India ; 印度|インド|Индия|الهند|भारत ; 新德里/德里|ニューデリー/デリー|Нью-Дели/Дели|نيودلهي/دلهي|नई दिल्ली/दिल्ली
Brazil ; 巴西|ブラジル|Бразилия|البرازيل|ब्राज़ील ; 巴西利亚|ブラジリア|Бразилиа|برازيليا|ब्रासीलिया/ब्रासिलिया
Argentina ; 阿根廷|アルゼンチン|Аргентина|الأرجنتين|अर्जेंटीना ; 布宜诺斯艾利斯|ブエノスアイレス|Буэнос-Айрес|بوينوس أيرس|ब्यूनस आयरस
Mexico ; 墨西哥|メキシコ|Мексика|المكسيك|मैक्सिको ; 墨西哥城|メキシコシティ|Мехико|مكسيكو سيتي|मेक्सिको सिटी
United States ; 美国|アメリカ合衆国|США|الولايات المتحدة|संयुक्त राज्य अमेरिका ; 华盛顿|ワシントン|Вашингтон|واشنطن|वॉशिंगटन/वाशिंगटन
Egypt ; 埃及|エジプト|Египет|مصر|मिस्र ; 开罗|カイロ|Каир|القاهرة|कायरो/काहिरा
Nigeria ; 尼日利亚|ナイジェリア|Нигерия|نيجيريا|नाइजीरिया ; 阿布贾|アブジャ|Абуджа|أبوجا|अबुजा
South Africa ; 南非|南アフリカ|ЮАР|جنوب أفريقيا|दक्षिण अफ़्रीका ; 比勒陀利亚|プレトリア|Претория|بريتوريا|प्रिटोरिया
Australia ; 澳大利亚|オーストラリア|Австралия|أستراليا|ऑस्ट्रेलिया ; 堪培拉|キャンベラ|Канберра|كانبرا|कैनबरा
Indonesia ; 印度尼西亚|インドネシア|Индонезия|إندونيسيا|इंडोनेशिया ; 雅加达|ジャカルタ|Джакарта|جاكرتا|जकार्ता
Turkey ; 土耳其|トルコ|Турция|تركيا|तुर्की ; 安卡拉|アンカラ|Анкара|أنقرة|अंकारा
Greece ; 希腊|ギリシャ|Греция|اليونان|यूनान ; 雅典|アテネ|Афины|أثينا|एथेंस
Poland ; 波兰|ポーランド|Польша|بولندا|पोलैंड ; 华沙|ワルシャワ|Варшава|وارسو|वॉरसॉ/वारसा
Netherlands ; 荷兰|オランダ|Нидерланды|هولندا|नीदरलैंड ; 阿姆斯特丹|アムステルダム|Амстердам|أمستردام|एम्स्टर्डम
Belgium ; 比利时|ベルギー|Бельгия|بلجيكا|बेल्जियम ; 布鲁塞尔|ブリュッセル|Брюссель|بروكسل|ब्रूसेल्स/ब्रसेल्स
Sweden ; 瑞典|スウェーデン|Швеция|السويد|स्वीडन ; 斯德哥尔摩|ストックホルム|Стокгольм|ستوكهولم|स्टॉकहोम
Norway ; 挪威|ノルウェー|Норвегия|النرويج|नॉर्वे ; 奥斯陆|オスロ|Осло|أوسلو|ओस्लो
Denmark ; 丹麦|デンマーク|Дания|الدانمرك|डेनमार्क ; 哥本哈根|コペンハーゲン|Копенгаген|كوبنهاغن/كوبنهاجن|कोपेनहेगन
Finland ; 芬兰|フィンランド|Финляндия|فنلندا|फ़िनलैंड ; 赫尔辛基|ヘルシンキ|Хельсинки|هلسنكي|हेलसिंकी
Austria ; 奥地利|オーストリア|Австрия|النمسا|ऑस्ट्रिया ; 维也纳|ウィーン|Вена|فيينا|विएना/वियना
Switzerland ; 瑞士|スイス|Швейцария|سويسرا|स्विट्ज़रलैंड ; 伯尔尼|ベルン|Берн|برن|बर्न
Ireland ; 爱尔兰|アイルランド|Ирландия|أيرلندا|आयरलैंड ; 都柏林|ダブリン|Дублин|دبلن|डबलिन
Hungary ; 匈牙利|ハンガリー|Венгрия|هنغاريا|हंगरी ; 布达佩斯|ブダペスト|Будапешт|بودابست|बुडापेस्ट
Czech Republic ; 捷克|チェコ|Чехия|التشيك|चेकिया ; 布拉格|プラハ|Прага|براغ|प्राग
Ukraine ; 乌克兰|ウクライナ|Украина|أوكرانيا|यूक्रेन ; 基辅|キーウ/キエフ|Киев|كييف|कीव
Iran ; 伊朗|イラン|Иран|إيران|ईरान ; 德黑兰|テヘラン|Тегеран|طهران|तेहरान
Iraq ; 伊拉克|イラク|Ирак|العراق|इराक ; 巴格达|バグダッド|Багдад|بغداد|बगदाद
Saudi Arabia ; 沙特阿拉伯|サウジアラビア|Саудовская Аравия|المملكة العربية السعودية|सऊदी अरब ; 利雅得|リヤド|Эр-Рияд/Рияд|الرياض|रियाद/रियाध
Pakistan ; 巴基斯坦|パキスタン|Пакистан|باكستان|पाकिस्तान ; 伊斯兰堡|イスラマバード|Исламабад|إسلام آباد/إسلام أباد|इस्लामाबाद
Thailand ; 泰国|タイ|Таиланд|تايلاند|थाईलैंड ; 曼谷|バンコク|Бангкок|بانكوك|बैंकॉक
Vietnam ; 越南|ベトナム|Вьетнам|فيتنام|वियतनाम ; 河内|ハノイ|Ханой|هانوي|हनोई
Philippines ; 菲律宾|フィリピン|Филиппины|الفلبين|फ़िलिपींस ; 马尼拉|マニラ|Манила|مانيلا|मनीला/मनिला
Malaysia ; 马来西亚|マレーシア|Малайзия|ماليزيا|मलेशिया ; 吉隆坡|クアラルンプール|Куала-Лумпур|كوالا لامبور|कुआलालंपुर
South Korea ; 韩国|韓国|Южная Корея|كوريا الجنوبية|दक्षिण कोरिया ; 首尔|ソウル|Сеул|سول/سيول|सिओल/सियोल
Chile ; 智利|チリ|Чили|تشيلي|चिली ; 圣地亚哥|サンチアゴ/サンティアゴ|Сантьяго|سانتياغو|सैंटियागो/सेंटियागो
Peru ; 秘鲁|ペルー|Перу|بيرو|पेरू ; 利马|リマ|Лима|ليما|लीमा
Colombia ; 哥伦比亚|コロンビア|Колумбия|كولومبيا|कोलंबिया ; 波哥大|ボゴタ|Богота|بوغوتا|बोगोटा
Venezuela ; 委内瑞拉|ベネズエラ|Венесуэла|فنزويلا|वेनेज़ुएला ; 加拉加斯|カラカス|Каракас|كاراكاس|काराकस
Cuba ; 古巴|キューバ|Куба|كوبا|क्यूबा ; 哈瓦那|ハバナ|Гавана|هافانا|हवाना
Morocco ; 摩洛哥|モロッコ|Марокко|المغرب|मोरक्को ; 拉巴特|ラバト|Рабат|الرباط|रबात
Algeria ; 阿尔及利亚|アルジェリア|Алжир|الجزائر|अल्जीरिया ; 阿尔及尔|アルジェ|Алжир|الجزائر|अल्जीयर्स
Ethiopia ; 埃塞俄比亚|エチオピア|Эфиопия|إثيوبيا|इथियोपिया ; 亚的斯亚贝巴|アジスアベバ|Аддис-Абеба|أديس أبابا|अदीस अबाबा/अदीस/आदिस अबाबा
Ghana ; 加纳|ガーナ|Гана|غانا|घाना ; 阿克拉|アクラ|Аккра|أكرا|एक्रा/अकरा
Tanzania ; 坦桑尼亚|タンザニア|Танзания|تنزانيا|तंज़ानिया ; 多多马|ドドマ|Додома|دودوما|डोडोमा
Uganda ; 乌干达|ウガンダ|Уганда|أوغندا|युगांडा ; 坎帕拉|カンパラ|Кампала|كامبالا|कंपाला
Senegal ; 塞内加尔|セネガル|Сенегал|السنغال|सेनेगल ; 达喀尔|ダカール|Дакар|داكار|डकार/डाकार
New Zealand ; 新西兰|ニュージーランド|Новая Зеландия|نيوزيلندا|न्यूज़ीलैंड ; 惠灵顿|ウェリントン|Веллингтон|ويلينغتون/ولينغتون|वेलिंग्टन
Bangladesh ; 孟加拉国|バングラデシュ|Бангладеш|بنغلاديش|बांग्लादेश ; 达卡|ダッカ|Дакка|دكا|ढाका
Afghanistan ; 阿富汗|アフガニスタン|Афганистан|أفغانستان|अफ़गानिस्तान ; 喀布尔|カブール|Кабул|كابول|काबुल
Nepal ; 尼泊尔|ネパール|Непал|نيبال|नेपाल ; 加德满都|カトマンズ|Катманду|كاتماندو|काठमांडू/काठमाण्डू
Romania ; 罗马尼亚|ルーマニア|Румыния|رومانيا|रोमानिया ; 布加勒斯特|ブカレスト|Бухарест|بوخارست|बुख़ारेस्ट
Bulgaria ; 保加利亚|ブルガリア|Болгария|بلغاريا|बुल्गारिया ; 索非亚|ソフィア|София|صوفيا|सोफ़िया
Serbia ; 塞尔维亚|セルビア|Сербия|صربيا|सर्बिया ; 贝尔格莱德|ベオグラード|Белград|بلغراد|बेलग्रेड
Croatia ; 克罗地亚|クロアチア|Хорватия|كرواتيا|क्रोएशिया ; 萨格勒布|ザグレブ|Загреб|زغرب|ज़ाग्रेब
Iceland ; 冰岛|アイスランド|Исландия|آيسلندا|आइसलैंड ; 雷克雅未克|レイキャビク/レイキャヴィーク|Рейкьявик|ريكيافيك|रेक्याविक/रेक्जाविक
Mongolia ; 蒙古|モンゴル|Монголия|منغوليا|मंगोलिया ; 乌兰巴托|ウランバートル|Улан-Батор|آلانباتار/أولان باتور|उलानबातर/उलान बटोर
Cameroon ; 喀麦隆|カメルーン|Камерун|الكاميرون|कैमरून ; 雅温得|ヤウンデ|Яунде|ياوندي|याउंडे
Jamaica ; 牙买加|ジャマイカ|Ямайка|جامايكا|जमैका ; 金斯敦|キングストン|Кингстон|كينغستون|किंग्स्टन/किंग्सटन
"""


def _split(field: str, n: int) -> list[tuple[str, ...]]:
    """``a|b|...`` (one per language) or a single value for all; each value ``x/y`` = spellings."""
    values = field.split("|")
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise InputError(f"world-facts data: {field!r} has {len(values)} values, expected {n}")
    return [tuple(v.strip() for v in value.split("/")) for value in values]


def _countries() -> list[tuple[list[tuple[str, ...]], list[tuple[str, ...]], str]]:
    """Per country: names and capitals (each in LANGUAGES order, each a tuple of spellings) and
    the continent code(s)."""
    rows = []
    more = NON_LATIN_COUNTRIES.strip().splitlines()
    for line, other in zip(COUNTRIES.strip().splitlines(), more, strict=True):
        names, capital, continent = (part.strip() for part in line.split(" ; "))
        english, other_names, other_capital = (part.strip() for part in other.split(" ; "))
        if english != names.split("|")[0]:
            raise InputError(f"world-facts data: row {english!r} does not follow {names.split('|')[0]!r}")
        rows.append(
            (
                _split(names, len(LATIN)) + _split(other_names, len(NON_LATIN)),
                _split(capital, len(LATIN)) + _split(other_capital, len(NON_LATIN)),
                continent,
            )
        )
    return rows


class WorldFacts(Task):
    """Capitals and continents of 67 countries in 13 languages (see :mod:`xtl.tasks.facts`)."""

    name = "world-facts"
    kind = "generation"
    languages = LANGUAGES
    direction = "en2x"
    default = TransplantSpec(source_layer=0, target_layer=0, component="mlp")
    family = "contains"
    relations = ("capital", "continent")

    def prompt(self, language: str, relation: str, country: str) -> str:
        """The two-shot prompt asking ``relation`` of ``country`` in ``language``."""
        k = LANGUAGES.index(language)
        country_field, *answer_fields = FIELDS[language]
        field = answer_fields[self.relations.index(relation)]
        sep = SEPARATOR.get(language, ": ")
        blocks = []
        for names, capitals, continent in SHOTS:
            answers = capitals if relation == "capital" else CONTINENTS[continent]
            answer = answers.split("|")[k].split("/")[0]
            blocks.append(f"{country_field}{sep}{names.split('|')[k].split('/')[0]}\n{field}{sep}{answer}")
        blocks.append(f"{country_field}{sep}{country}\n{field}{sep.rstrip()}")
        return "\n\n".join(blocks)

    def record(self, language: str, relation: str, names, capital, continent) -> Record:
        k = LANGUAGES.index(language)
        if relation == "capital":
            answers = capital[k]
        else:
            answers = tuple(a for code in continent.split("/") for a in CONTINENTS[code].split("|")[k].split("/"))
        # Hindi is written with and without the nukta (फ़्रांस, फ्रांस): accept both
        spellings = dict.fromkeys([*answers, *(a.replace(NUKTA, "") for a in answers)])
        return Record(self.prompt(language, relation, names[k][0]), answers[0], aliases=tuple(spellings)[1:])

    def rows(self, language: str, split: str) -> list[tuple[Record, Record]]:
        rows = []
        for k, (names, capital, continent) in enumerate(_countries()):
            if SPLITS[k % 2] != split:
                continue
            for relation in self.relations:
                rows.append(
                    (
                        self.record("en", relation, names, capital, continent),
                        self.record(language, relation, names, capital, continent),
                    )
                )
        return rows


def untouched_accuracy(
    model, languages=LANGUAGES, max_new_tokens: int = 6, batch_size: int = 32, progress: bool = True
) -> pd.DataFrame:
    """The untouched model's accuracy per language and relation, on both splits: which
    languages have a gap for the transplant to close.

    Returns:
        Columns ``language, relation, correct, items, accuracy``.

    Example:
        >>> untouched_accuracy(smollm2, ["en", "sw"], max_new_tokens=3, progress=False)  # xtl.load_model("smollm2-135m")
    """
    from xtl.generate import greedy_generate
    from xtl.prompts import tokenize

    task = WorldFacts()
    rows = []
    for language in languages:
        items = [item for split in SPLITS for item in task.items(language, split=split)]
        verdicts = []
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            texts = greedy_generate(model, tokenize(model, [i.target for i in chunk]), max_new_tokens).texts(
                model.tokenizer
            )
            verdicts += [task.score(text, item) for text, item in zip(texts, chunk)]
        for k, relation in enumerate(task.relations):  # rows alternate the relations per country
            hits = verdicts[k :: len(task.relations)]
            rows.append(
                {
                    "language": language,
                    "relation": relation,
                    "correct": sum(hits),
                    "items": len(hits),
                    "accuracy": sum(hits) / len(hits),
                }
            )
            if progress:
                print(f"{language} {relation:9s} {sum(hits)}/{len(hits)}", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    """``python -m xtl.tasks.facts --model smollm2-135m``: untouched accuracy per language."""
    import torch

    from xtl.loading import load_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", default="smollm2-135m", help="what xtl.load_model accepts")
    parser.add_argument("--max-new-tokens", type=int, default=6)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--languages", help=f"comma-separated (default: all, {','.join(LANGUAGES)})")
    args = parser.parse_args(argv)
    languages = LANGUAGES if args.languages is None else tuple(args.languages.split(","))
    unknown = sorted(set(languages) - set(LANGUAGES))
    if unknown:
        parser.error(f"unknown languages {unknown}; world-facts has {list(LANGUAGES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    table = untouched_accuracy(load_model(args.model), languages, max_new_tokens=args.max_new_tokens)
    print(table.pivot(index="language", columns="relation", values="correct").loc[list(languages)])


if __name__ == "__main__":
    main()
