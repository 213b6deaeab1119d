"""The one place `keras_latent.attached` reads private members of Keras's functional graph (keras 3.15).

Why: a layer inside a nested model (a Sequential stem, a keras.applications backbone inside a
classifier) has no tensor in the outer model's graph, so
`keras.Model(model.input, model.get_layer("stem").get_layer("conv1").output)` fails with
"Graph disconnected" (keras-team/keras#16123, earlier tensorflow/tensorflow#34977; the most repeated
complaint against Grad-CAM tools). `graph.py` therefore re-runs a functional model's own graph node by
node, calling the same layer objects on new symbolic inputs. That needs, for a `Functional`, its nodes
in depth order (`_nodes_by_depth`) and, for each node, the operation it called (`operation`), its call
arguments with the tensors filled in (`arguments.fill_in`), its input and output tensors
(`input_tensors`, `outputs`) and whether it is an input (`is_input`). Keras has no public API for
these, so they are read here only, checked at import: a Keras without them fails with one line naming
the supported version, instead of an interpreter that silently computes something else.
"""
from __future__ import annotations

import dataclasses

import keras

SUPPORTED = "keras 3.15"
_NODE_MEMBERS = ("operation", "arguments", "outputs", "is_input", "input_tensors")


def _check() -> None:
    """Build a two-node functional model and check every private member this module reads."""
    image = keras.Input((2, 2, 1))
    model = keras.Model(image, keras.layers.Identity(name="canary")(image))
    nodes = getattr(model, "_nodes_by_depth", None)
    ok = isinstance(nodes, dict) and all(isinstance(d, int) for d in nodes)
    node = next((n for level in (nodes or {}).values() for n in level if not getattr(n, "is_input", True)), None)
    ok = ok and node is not None and all(hasattr(node, name) for name in _NODE_MEMBERS)
    ok = ok and callable(getattr(node.arguments, "fill_in", None))
    if not ok:
        raise ImportError(f"keras_latent.attached reads Keras's functional graph (Functional._nodes_by_depth, "
                          f"Node.operation/arguments/outputs); supported: {SUPPORTED}, installed: keras "
                          f"{keras.__version__}")


_check()


@dataclasses.dataclass(frozen=True)
class GraphNode:
    """One call in a functional model's graph: `operation(*args, **kwargs)` -> `outputs` (flat list)."""

    operation: object
    input_tensors: list
    outputs: list
    _arguments: object

    def arguments(self, values: dict) -> tuple[tuple, dict]:
        """(args, kwargs) of the call with every input tensor replaced by `values[id(tensor)]`."""
        return self._arguments.fill_in(values)


def is_functional(model) -> bool:
    """Whether `model` is a graph of nodes (a functional model), not a Sequential or a subclassed model."""
    return isinstance(model, keras.Model) and isinstance(getattr(model, "_nodes_by_depth", None), dict)


def graph_nodes(model) -> list[GraphNode]:
    """A functional model's calls in an order that computes every input before it is used (inputs left out)."""
    by_depth = model._nodes_by_depth
    return [GraphNode(node.operation, list(node.input_tensors), list(node.outputs), node.arguments)
            for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]
            if node.operation is not None and not node.is_input]
