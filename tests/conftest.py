"""Fixtures shared by the test files."""
import pytest


@pytest.fixture
def session():
    """A fresh TF graph with its default session, graph seed 0, for one test."""
    import tensorflow.compat.v1 as tf
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as sess, sess.as_default():
        tf.set_random_seed(0)
        yield sess
