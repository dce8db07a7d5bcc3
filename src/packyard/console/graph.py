"""The ancestry graph of a bucket's page, laid out by the server for inline SVG (templates/_ancestry.html):
the bucket's latest version in the middle, the versions it was built from on the left, the buckets built
from it on the right, each edge labelled with its status in words (UP_TO_DATE, OUT_OF_DATE ...), so that
colour is never the only sign. Every node links to its version's page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from packyard.domain.ancestry import AncestryStatus, Relation
from packyard.domain.models import Iteration

MAX_SIDE = 12  # nodes drawn per side; the rest are counted under the graph (the table lists them all)
NODE_W, NODE_H, ROW, GAP_Y = 210, 58, 76, 14
COLUMNS = (10, 330, 650)
WIDTH = COLUMNS[2] + NODE_W + 10


@dataclass(frozen=True, slots=True)
class Node:
    x: int
    y: int
    title: str  # the bucket
    subtitle: str  # the version, and through which channel
    href: str
    current: bool = False

    @property
    def mid_y(self) -> int:
        return self.y + NODE_H // 2


@dataclass(frozen=True, slots=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int
    status: str

    @property
    def label_x(self) -> int:
        return (self.x1 + self.x2) // 2

    @property
    def label_y(self) -> int:
        return (self.y1 + self.y2) // 2 - 6


@dataclass(slots=True)
class Graph:
    width: int
    height: int
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    hidden: int = 0  # relations not drawn (beyond MAX_SIDE a side)

    @property
    def empty(self) -> bool:
        return len(self.nodes) <= 1


def _version(it: Iteration) -> str:
    return f"v{it.incremental_version}" if it.complete else "v0 (incomplete)"


def _column(count: int, height: int) -> list[int]:
    top = (height - (count * ROW - (ROW - NODE_H))) // 2
    return [top + n * ROW for n in range(count)]


def layout(
    slug: str,
    latest: Iteration | None,
    parents: Sequence[Relation],
    children: Sequence[Relation],
    version_url: Callable[[Iteration], str],
    bucket_url: str,
) -> Graph:
    left, right = list(parents[:MAX_SIDE]), list(children[:MAX_SIDE])
    rows = max(len(left), len(right), 1)
    height = rows * ROW - (ROW - NODE_H) + 2 * GAP_Y
    graph = Graph(WIDTH, height, hidden=len(parents) - len(left) + len(children) - len(right))
    middle = Node(
        COLUMNS[1],
        _column(1, height)[0],
        slug,
        _version(latest) + " (latest)" if latest else "no complete version",
        version_url(latest) if latest else bucket_url,
        current=True,
    )
    graph.nodes.append(middle)
    for relation, y in zip(left, _column(len(left), height), strict=True):
        via = f" via {relation.channel.slug}" if relation.channel else ""
        node = Node(
            COLUMNS[0], y, relation.parent.bucket_slug, _version(relation.parent) + via, version_url(relation.parent)
        )
        graph.nodes.append(node)
        graph.edges.append(_edge(node.x + NODE_W, node.mid_y, middle.x, middle.mid_y, relation.status))
    for relation, y in zip(right, _column(len(right), height), strict=True):
        via = f" via {relation.channel.slug}" if relation.channel else ""
        node = Node(
            COLUMNS[2], y, relation.child.bucket_slug, _version(relation.child) + via, version_url(relation.child)
        )
        graph.nodes.append(node)
        graph.edges.append(_edge(middle.x + NODE_W, middle.mid_y, node.x, node.mid_y, relation.status))
    return graph


def _edge(x1: int, y1: int, x2: int, y2: int, status: AncestryStatus) -> Edge:
    return Edge(x1, y1, x2, y2, status.value)
