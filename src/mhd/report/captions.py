"""Config text that reaches the report's captions (workflow/report/*.rst, rendered by `snakemake --report`
as reStructuredText with docutils' defaults, which run `include` and `raw`) made inert: shown as
written, never read as markup."""

import string


def rst_text(text) -> str:
    """`text` as inline reStructuredText that renders as exactly `text`, on one line: every run of
    whitespace (line breaks of any kind too) becomes one space, so no directive (`.. include::`,
    `.. raw::`) or other block can start, and every ASCII punctuation character is backslash-escaped,
    so no inline markup (roles, links, substitutions, emphasis, footnotes, targets) is read."""
    return "".join("\\" + c if c in string.punctuation else c for c in " ".join(str(text).split()))
