"""The CJK-heavy corpus of issue 10: a Desktop export where about a third of the messages are
Chinese runs of 5 to 120 characters, the rest English messages of up to 60 words and Russian
ones of up to 40 (inflected forms, so stemming has work to do), seeded and Zipf-distributed
over the vocabulary as real chats are.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from pathlib import Path

# Common characters, most frequent first (the Zipf draw favours the head).
HAN = (
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之"
    "年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理"
    "心她本前开但因只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高"
    "间由问很最重并物手应战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老"
    "给世位次度门任常先海通教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女"
    "变四神总何电数安少报才结反受目太量再感建务做接必场件计管期市直德资命山金指克许统区保至队形"
    "社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象完设式色路记南品住告类求据程"
    "北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联持组每"
    "济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调深商算质"
    "团集百需价花党华城石级整府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称"
    "數據庫備份資料頻道查詢們這個說話後來"
)
EN = (
    "the of and to in is it that for on with as was at by be this have from or one had not but "
    "what all were when we there can an your which their said if do will each about how up out "
    "them then she many some so these would other into has more her two like him see time could "
    "no make than first been its who now people my made over did down only way find use may water "
    "long little very after words called just where most know database backup backups restore "
    "restored query queries queried running runs ran server servers index indexes indexed search "
    "searching searched message messages channel channels import imported importing export "
    "PostgreSQL postgres partition partitions partitioned meeting meetings tomorrow release "
    "released releasing deploy deployed deployment storage compress compressed compression "
    "benchmark benchmarks measured measuring latency throughput finished finishing connection "
    "connections replica replicas failover table tables column columns tokenizer tokens"
).split()
RU = (
    "и в не на я быть он с что а по это она этот к но они мы как из у который то за свой весь "
    "год от так о для ты же все тот мочь вы человек такой его сказать только или еще бы себя "
    "один как уже до время если сам когда другой вот говорить наш мой знать стать при чтобы "
    "дело жизнь кто первый очень два день ее новый рука даже во со раз где там под можно ну "
    "какой после их работа без самый потом надо хотеть ли слово идти большой должен место "
    "ноутбук ноутбуки ноутбука ноутбуком ноутбуков встреча встречи встречу встречей перенесена "
    "перенесли завтра сегодня база базы базу данных данные резервная копия копии копию сервер "
    "сервера серверов запрос запросы запросов индекс индексы таблица таблицы таблицу канал "
    "каналы канала сообщение сообщения сообщений обсудили обсуждаем новую новой схему схема"
).split()


def _zipf_pick(rng: random.Random, words: list[str], weights: list[float], k: int) -> list[str]:
    return rng.choices(words, cum_weights=weights, k=k)


def _cum(n: int) -> list[float]:
    return list(itertools.accumulate(1 / (r + 1) ** 0.9 for r in range(n)))


def texts(n: int, seed: int = 10) -> list[str]:
    """`n` message texts: ~1/3 Chinese, ~1/3 English, ~1/3 Russian."""
    rng = random.Random(seed)
    han, en, ru = list(HAN), EN, RU
    wh, we, wr = _cum(len(han)), _cum(len(en)), _cum(len(ru))
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 1 / 3:
            length = rng.randint(5, 120)
            chars = _zipf_pick(rng, han, wh, length)
            # Chinese punctuation every 8-20 characters, as sentences have.
            for at in range(rng.randint(8, 20), len(chars), rng.randint(8, 20)):
                chars[at] = rng.choice("，。！？")
            out.append("".join(chars))
        elif r < 2 / 3:
            words = _zipf_pick(rng, en, we, rng.randint(1, 60))
            words[0] = words[0].capitalize()
            out.append(" ".join(words) + rng.choice([".", "!", "?", ""]))
        else:
            words = _zipf_pick(rng, ru, wr, rng.randint(1, 40))
            words[0] = words[0].capitalize()
            out.append(" ".join(words) + rng.choice([".", "!", "?", ""]))
    return out


def write_cjk_export(folder: Path, n: int, *, chat_id: int = 1_600_000_000) -> Path:
    """`folder/result.json`: one chat of `n` messages of the corpus; returns its path."""
    rng = random.Random(11)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "result.json"
    ts = 1_700_000_000
    with path.open("w", encoding="utf-8") as out:
        out.write(
            json.dumps(
                {"name": "CJK corpus", "type": "public_supergroup", "id": chat_id},
                ensure_ascii=False,
            )[:-1]
        )
        out.write(', "messages": [\n')
        for i, text in enumerate(texts(n), 1):
            ts += rng.randint(1, 60)
            sender = rng.randrange(20)
            msg = {
                "id": i,
                "type": "message",
                "date": dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "date_unixtime": str(ts),
                "from": f"User {sender}",
                "from_id": f"user{1000 + sender}",
                "text": text,
                "text_entities": [{"type": "plain", "text": text}],
            }
            out.write(("  " if i == 1 else ",\n  ") + json.dumps(msg, ensure_ascii=False))
        out.write("\n ]\n}")
    return path
