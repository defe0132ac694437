import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhd.data import graphs
from mhd.errors import ConfigError


def degrees(edges, n):
    out = [0] * n
    inn = [0] * n
    for s, d in edges:
        out[s] += 1
        inn[d] += 1
    return inn, out


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(graphs.TOPOLOGIES), st.integers(2, 16), st.integers(1, 16), st.integers(1, 15),
       st.booleans(), st.integers(0, 1000))
def test_graph_properties(topology, n, islands, degree, directed, seed):
    try:
        edges = graphs.make(topology, n, islands=islands, degree=degree, directed=directed, graph_seed=seed)
    except ConfigError:
        return
    assert edges == sorted(set(edges)), "duplicate or unsorted edges"
    assert all(s != d and 0 <= s < n and 0 <= d < n for s, d in edges)
    if not directed:
        assert set(edges) == {(d, s) for s, d in edges}, "undirected graph is not symmetric"
    inn, out = degrees(edges, n)
    if topology == "complete":
        assert inn == [n - 1] * n
    if topology == "regular":
        assert inn == [degree] * n and out == [degree] * n
    if topology == "islands":
        assert inn == [n // islands - 1] * n
    if topology == "ring" and n > 2:
        assert inn == ([1] * n if directed else [2] * n)
    if topology == "chain":
        assert len(edges) == (n - 1) * (1 if directed else 2)
    if topology == "star":
        assert out[0] == n - 1 and all(out[1:]) == (not directed)


def test_in_neighbours_follow_the_edges():
    edges = graphs.make("chain", 4, directed=True)
    assert edges == [(0, 1), (1, 2), (2, 3)]
    assert graphs.in_neighbours(edges, 4) == [[], [0], [1], [2]]
    assert graphs.in_neighbours(graphs.make("star", 3), 3) == [[1, 2], [0], [0]]


def test_random_regular_is_seeded():
    a = graphs.make("regular", 10, degree=3, graph_seed=1)
    assert a == graphs.make("regular", 10, degree=3, graph_seed=1)
    assert a != graphs.make("regular", 10, degree=3, graph_seed=2)


@pytest.mark.parametrize("topology, n, kwargs, message", [
    ("islands", 5, {"islands": 2}, r"islands = 2 with clients = 5.*divisor of 5 \(1, 5\)"),
    ("regular", 4, {"degree": 4}, r"degree = 4 with clients = 4.*1\.\.3"),
    ("regular", 5, {"degree": 3}, "clients x degree even"),
    ("hypercube", 4, {}, "unknown topology 'hypercube'; allowed: complete, ring"),
    ("ring", 1, {}, "at least 2 clients"),
])
def test_impossible_graphs_are_refused(topology, n, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        graphs.make(topology, n, **kwargs)


def test_artefact_round_trip(tmp_path):
    edges = graphs.make("islands", 6, islands=3)
    graphs.write(tmp_path, edges, {"topology": "islands", "clients": 6, "islands": 3})
    back, meta = graphs.read(tmp_path)
    assert back == edges and meta["in_degree"] == [1] * 6
    assert (tmp_path / "edges.csv").read_text().startswith("src,dst\n")
