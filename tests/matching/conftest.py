import pytest

from matching import Book, ReferenceBook


@pytest.fixture(params=[Book, ReferenceBook], ids=["numba", "reference"])
def book_cls(request):
    """Every test that takes this runs against the compiled book and the reference book."""
    return request.param
