"""``world-facts``: multilingual factual recall, written for xtl (public knowledge, no dataset).

The capital and the continent of 67 countries, asked in English and seven other languages of
different resource levels (French, Spanish, German, Italian, Portuguese, Swahili,
Indonesian). Each prompt is a two-shot fill-in in one language, with no articles to inflect::

    Pays : Canada
    Capitale : Ottawa

    Pays : Kenya
    Capitale : Nairobi

    Pays : Japon
    Capitale :

The gold is the answer in the prompt's language, with its other spellings as aliases
("Lisboa" for Portuguese, "Moscou"/"Moscovo"); scoring as XQuAD (a case-insensitive
substring). Countries alternate between the ``sample`` and ``unseen`` halves.
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

LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "sw", "id")

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
}
# French puts a space before the colon
COLON = {"fr": " :"}

CONTINENTS = {  # code -> names per language (LANGUAGES order); "/" separates accepted spellings
    "AF": "Africa|Afrique|África/Africa|Afrika|Africa|África/Africa|Afrika|Afrika",
    "AS": "Asia|Asie|Asia|Asien|Asia|Ásia/Asia|Asia|Asia",
    "EU": "Europe|Europe|Europa|Europa|Europa|Europa|Ulaya/Uropa|Eropa",
    "NA": (
        "North America|Amérique du Nord|América del Norte/Norteamérica|Nordamerika|"
        "America del Nord/Nordamerica|América do Norte|Amerika Kaskazini|Amerika Utara"
    ),
    "SA": (
        "South America|Amérique du Sud|América del Sur/Sudamérica/Suramérica|Südamerika|"
        "America del Sud/Sudamerica|América do Sul|Amerika Kusini|Amerika Selatan"
    ),
    "OC": "Oceania|Océanie|Oceanía|Ozeanien|Oceania|Oceania|Oceania/Oseania|Oseania",
}

# The two worked examples in every prompt (not among the questions).
SHOTS = (
    ("Canada|Canada|Canadá|Kanada|Canada|Canadá|Kanada|Kanada", "Ottawa", "NA"),
    ("Kenya|Kenya|Kenia|Kenia|Kenya|Quênia/Quénia|Kenya|Kenya", "Nairobi", "AF"),
)

# country names (LANGUAGES order) ; capital (one name for all, or one per language) ; continent
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


def _split(field: str, n: int) -> list[tuple[str, ...]]:
    """``a|b|...`` (one per language) or a single value for all; each value ``x/y`` = spellings."""
    values = field.split("|")
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise InputError(f"world-facts data: {field!r} has {len(values)} values, expected {n}")
    return [tuple(v.strip() for v in value.split("/")) for value in values]


def _countries() -> list[tuple[list[tuple[str, ...]], list[tuple[str, ...]], str]]:
    rows = []
    for line in COUNTRIES.strip().splitlines():
        names, capital, continent = (part.strip() for part in line.split(" ; "))
        rows.append((_split(names, len(LANGUAGES)), _split(capital, len(LANGUAGES)), continent))
    return rows


class WorldFacts(Task):
    """Capitals and continents of 67 countries in eight languages (see :mod:`xtl.tasks.facts`)."""

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
        colon = COLON.get(language, ":")
        blocks = []
        for names, capital, continent in SHOTS:
            answer = capital if relation == "capital" else CONTINENTS[continent].split("|")[k].split("/")[0]
            blocks.append(f"{country_field}{colon} {names.split('|')[k].split('/')[0]}\n{field}{colon} {answer}")
        blocks.append(f"{country_field}{colon} {country}\n{field}{colon}")
        return "\n\n".join(blocks)

    def record(self, language: str, relation: str, names, capital, continent) -> Record:
        k = LANGUAGES.index(language)
        if relation == "capital":
            answers = capital[k]
        else:
            answers = tuple(a for code in continent.split("/") for a in CONTINENTS[code].split("|")[k].split("/"))
        return Record(self.prompt(language, relation, names[k][0]), answers[0], aliases=tuple(answers[1:]))

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
        >>> untouched_accuracy(xtl.load_model("smollm2-135m"), ["en", "sw"])
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = untouched_accuracy(load_model(args.model), max_new_tokens=args.max_new_tokens)
    print(table.pivot(index="language", columns="relation", values="correct").loc[list(LANGUAGES)])


if __name__ == "__main__":
    main()
