"""How well Kundenpuls reads the sentiment of survey comments, next to plain TextBlob.

    python bench/sentiment_accuracy.py [--data tests/data] [--set blind8|blind6|...|comments]
                                       [--force-language]
                                       [--errors N]

Reads ``<set>_de.jsonl`` and ``<set>_en.jsonl`` from the data folder (one JSON object per
line: ``{"text": ..., "label": "negative" | "neutral" | "positive", "note": ...}``), scores every
comment with ``surveys.sentiment.score`` and with plain TextBlob (``TextBlob(text).sentiment
.polarity``, cut at the same label thresholds) and prints per language: the number of comments,
accuracy, macro-F1, recall of the negative class (the unhappy customers we must not miss), the CPU
time per comment and the confusion matrices.

By default our analyzer detects each comment's language, as in production; ``--force-language``
passes the file's language instead, to measure the analyzers without language detection.
CPU time is ``time.process_time`` over all comments of a file, after one warm-up pass that loads
the models and lexicons.

Eight sets in both languages, each ``<set>_de.jsonl`` and ``<set>_en.jsonl``: ``comments`` (193 +
191 comments) is the development set the lexicons were tuned on. ``holdout`` (195 + 193), ``blind2``
(177 + 177), ``blind3`` (180 + 177), ``blind4`` (170 + 170), ``blind5`` (230 + 229), ``blind6`` (223 +
224) and ``blind8`` (230 + 230) were each written by someone who had seen neither the analyzer nor any
set; the lexicons were widened after holdout, blind2, blind3, blind5 and blind6 were measured, and the
model's two thresholds were chosen on blind4 and blind5. ``blind8`` (the default) is blind to the rules
and the thresholds, and the row "model without this set" makes it blind to the model too. Two more
sets, ``blind7_en`` and ``blind9_en``, are English training data only. The learned model
(``surveys/sentiment/learned.py``) ships trained on all of them; for each set this prints the analyzer
with a model trained on the *other* sets (the honest figure), as shipped, with the rules only, and
plain TextBlob.

Exit status: 0 when it ran, 2 when a data file is missing or malformed (the message says which).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

# Run as a script (python bench/sentiment_accuracy.py): make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from textblob import TextBlob

from surveys.languages import SUPPORTED_LANGUAGES, Language
from surveys.sentiment import (
    NEGATIVE_AT_OR_BELOW,
    POSITIVE_AT_OR_ABOVE,
    Label,
    analyzer_for,
    label_for,
    learned,
    score,
)

LABELS = tuple(Label)


class DataError(Exception):
    """A data file that is missing or cannot be read as labelled comments."""


@dataclass(frozen=True, slots=True)
class Comment:
    """One labelled comment from a data file."""

    text: str
    label: Label
    note: str


@dataclass(frozen=True, slots=True)
class Scored:
    """What one analyzer said about every comment of a file, and what it cost."""

    labels: list[Label]
    polarities: list[float]
    cpu_seconds: float
    languages: list[str]


@dataclass(frozen=True, slots=True)
class Metrics:
    """The figures of one analyzer on one file."""

    n: int
    accuracy: float
    macro_f1: float
    negative_recall: float | None
    confusion: Counter[tuple[Label, Label]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--data", type=Path, default=Path("tests/data"), help="folder with comments_<lang>.jsonl"
    )
    parser.add_argument(
        "--set",
        default="blind8",
        help="any <set> with <set>_de.jsonl and <set>_en.jsonl in the data folder: comments (the "
        "development set), holdout, blind2-blind6, blind8 (see the module docstring)",
    )
    parser.add_argument(
        "--force-language",
        action="store_true",
        help="pass the file's language to our analyzer instead of detecting it per comment",
    )
    parser.add_argument(
        "--errors", type=int, default=0, metavar="N", help="list up to N comments per language we got wrong"
    )
    return parser.parse_args(argv)


def load_comments(path: Path) -> list[Comment]:
    """The labelled comments of one file; raises DataError naming the file and line."""
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected one JSON object per line: text, label, note)")
    comments = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not JSON ({error.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise DataError(f'{path}:{number}: expected an object with a "text" string')
        try:
            label = Label(str(data.get("label")))
        except ValueError:
            allowed = ", ".join(item.value for item in LABELS)
            raise DataError(f"{path}:{number}: label {data.get('label')!r} is not one of {allowed}") from None
        comments.append(Comment(data["text"], label, str(data.get("note") or "")))
    if not comments:
        raise DataError(f"{path}: no comments in the file")
    return comments


def run_analyzer(texts: Sequence[str], analyze: Callable[[str], tuple[float, str]]) -> Scored:
    """Score every text after one untimed warm-up pass; CPU time is for the timed pass only."""
    for text in texts:
        analyze(text)
    started = time.process_time()
    results = [analyze(text) for text in texts]
    cpu = time.process_time() - started
    polarities = [polarity for polarity, _ in results]
    return Scored([label_for(p) for p in polarities], polarities, cpu, [language for _, language in results])


def metrics(gold: Sequence[Label], predicted: Sequence[Label]) -> Metrics:
    """Accuracy, macro-F1 over the labels that occur, and recall of the negative class."""
    confusion = Counter(zip(gold, predicted, strict=True))
    n = len(gold)
    f1_scores = []
    for item in LABELS:
        true_positive = confusion[item, item]
        gold_count = sum(1 for g in gold if g is item)
        predicted_count = sum(1 for p in predicted if p is item)
        if gold_count or predicted_count:
            f1_scores.append(2 * true_positive / (gold_count + predicted_count))
    negatives = sum(1 for g in gold if g is Label.NEGATIVE)
    return Metrics(
        n=n,
        accuracy=sum(confusion[item, item] for item in LABELS) / n,
        macro_f1=sum(f1_scores) / len(f1_scores),
        negative_recall=confusion[Label.NEGATIVE, Label.NEGATIVE] / negatives if negatives else None,
        confusion=confusion,
    )


def settings_line(args: argparse.Namespace) -> str:
    """The first output line: everything that decides the numbers below."""
    language = "forced from the file name" if args.force_language else "detected per comment (py3langid)"
    return (
        f"sentiment accuracy: data={args.data}/{args.set}_*.jsonl, "
        f"ours=surveys.sentiment.score with language {language}, "
        f"baseline=TextBlob {metadata.version('textblob')} PatternAnalyzer, labels negative <= "
        f"{NEGATIVE_AT_OR_BELOW} < neutral < {POSITIVE_AT_OR_ABOVE} <= positive, "
        f"py3langid {metadata.version('py3langid')}, Python {platform.python_version()}"
    )


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def print_metrics(console: Console, language: str, rows: list[tuple[str, Metrics, Scored]]) -> None:
    """One table per language: the figures of each analyzer side by side."""
    table = Table(title=f"{language}: {rows[0][1].n} comments", title_justify="left")
    for column in ("analyzer", "n", "accuracy", "macro-F1", "negative recall", "CPU µs/comment"):
        table.add_column(column, justify="left" if column == "analyzer" else "right")
    for name, figures, scored in rows:
        table.add_row(
            name,
            str(figures.n),
            _ratio(figures.accuracy),
            _ratio(figures.macro_f1),
            _ratio(figures.negative_recall),
            f"{1e6 * scored.cpu_seconds / figures.n:.0f}",
        )
    console.print(table)


def print_confusion(console: Console, language: str, name: str, figures: Metrics) -> None:
    """Rows are the gold labels, columns what the analyzer said."""
    table = Table(title=f"{language}, {name}: rows gold, columns predicted", title_justify="left")
    table.add_column("gold")
    for item in LABELS:
        table.add_column(item.value, justify="right")
    for gold in LABELS:
        table.add_row(gold.value, *(str(figures.confusion[gold, predicted]) for predicted in LABELS))
    console.print(table)


def print_errors(console: Console, comments: list[Comment], ours: Scored, limit: int) -> None:
    """The first ``limit`` comments our analyzer labelled differently from the data."""
    wrong = [
        (c, label, p)
        for c, label, p in zip(comments, ours.labels, ours.polarities, strict=True)
        if label != c.label
    ]
    for comment, label, polarity in wrong[:limit]:
        note = f"  ({comment.note})" if comment.note else ""
        figures = f"gold {comment.label.value:8} ours {label.value:8} {polarity:+.2f}"
        console.print(f"  {figures}  {escape(comment.text + note)}", highlight=False)


HONEST = "Kundenpuls, model without this set"
"""The figure to quote: the learned model (surveys/sentiment/learned.py) trained on every other set,
so that none of this set's comments was seen; the rules were tuned on the development set and on the
blind sets up to blind3 (see the module docstring)."""


def evaluate_language(
    console: Console, args: argparse.Namespace, language: Language, comments: list[Comment]
) -> None:
    """Score one file with both analyzers and print its tables."""
    texts = [comment.text for comment in comments]
    forced = language if args.force_language else None

    def ours(text: str) -> tuple[float, str]:
        result = score(text, forced)
        return result.polarity, result.language

    held_out = {
        other: learned.train_language(
            args.data, other, [s for s in learned.training_sets(other) if s != args.set]
        )
        for other in SUPPORTED_LANGUAGES
    }

    def ours_held_out(text: str) -> tuple[float, str]:
        read_as = score(text, forced).language
        rules = analyzer_for(read_as).evaluate(text)
        model = held_out[read_as].polarity(text)
        return learned.blend(rules.polarity, model, verdict=rules.verdict), read_as

    def rules_only(text: str) -> tuple[float, str]:
        read_as = score(text, forced).language
        return analyzer_for(read_as).evaluate(text).polarity, read_as

    def plain(text: str) -> tuple[float, str]:
        return float(TextBlob(text).sentiment.polarity), "en"

    gold = [comment.label for comment in comments]
    scored = {
        HONEST: run_analyzer(texts, ours_held_out),
        "Kundenpuls as shipped (model learned this set)": run_analyzer(texts, ours),
        "Kundenpuls rules only": run_analyzer(texts, rules_only),
        "plain TextBlob": run_analyzer(texts, plain),
    }
    figures = {name: metrics(gold, result.labels) for name, result in scored.items()}
    print_metrics(console, language, [(name, figures[name], scored[name]) for name in scored])
    if not args.force_language:
        same = sum(1 for detected in scored[HONEST].languages if detected == language)
        console.print(
            f"{language}: read as {language} by our analyzer: {same} of {len(texts)}", highlight=False
        )
    for name in (HONEST, "plain TextBlob"):
        print_confusion(console, language, name, figures[name])
    if args.errors:
        console.print(f"{language}: comments {HONEST} labelled differently (first {args.errors}):")
        print_errors(console, comments, scored[HONEST], args.errors)


def main(argv: list[str] | None = None) -> int:
    """Load both files, then print the settings and one block of tables per language."""
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(settings_line(args), highlight=False, soft_wrap=True)
    try:
        files = {
            language: load_comments(args.data / f"{args.set}_{language}.jsonl")
            for language in SUPPORTED_LANGUAGES
        }
    except DataError as error:
        console.print(f"[red]cannot run:[/red] {escape(str(error))}", highlight=False)
        return 2
    for language, comments in files.items():
        evaluate_language(console, args, language, comments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
