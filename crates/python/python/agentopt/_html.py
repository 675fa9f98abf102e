"""The Markdown agentopt's reports are written in (headings, pipe tables, lists,
paragraphs, `code` and **bold**), as HTML for Jupyter's rich display."""

import html
import re
from typing import Iterator, List

__all__ = ["markdown_to_html"]

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\([^)]*\)$")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = _CODE.sub(r"<code>\1</code>", text)
    return _BOLD.sub(r"<strong>\1</strong>", text)


def _cells(row: str) -> List[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _table(rows: List[str]) -> str:
    body = [row for row in rows if not re.fullmatch(r"\|?[\s:|-]+\|?", row.strip())]
    head, *rest = body
    header = "".join(f"<th>{_inline(cell)}</th>" for cell in _cells(head))
    lines = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in _cells(row)) + "</tr>" for row in rest)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{lines}</tbody></table>"


def _blocks(lines: List[str]) -> Iterator[str]:
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if not line:
            index += 1
            continue
        if line.startswith("|"):
            end = index
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            yield _table(lines[index:end])
            index = end
            continue
        if line.startswith("- "):
            end = index
            while end < len(lines) and lines[end].startswith("- "):
                end += 1
            yield "<ul>" + "".join(f"<li>{_inline(item[2:])}</li>" for item in lines[index:end]) + "</ul>"
            index = end
            continue
        heading = re.match(r"^(#{1,6}) (.*)$", line)
        image = _IMAGE.match(line)
        if heading:
            level = len(heading.group(1))
            yield f"<h{level}>{_inline(heading.group(2))}</h{level}>"
        elif image:
            yield f"<p><em>{html.escape(image.group(1))}</em></p>"  # a file beside report.md
        else:
            yield f"<p>{_inline(line)}</p>"
        index += 1


def markdown_to_html(markdown: str) -> str:
    """``markdown`` as an HTML fragment."""
    return "<div class=\"agentopt-report\">" + "".join(_blocks(markdown.splitlines())) + "</div>"
