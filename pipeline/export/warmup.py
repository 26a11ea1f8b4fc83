"""TF Serving warm-up records without tensorflow-serving-api.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord file of `PredictionLog` protos) when it
loads a model, so the first real request does not pay for graph initialisation. The official message classes
live in tensorflow-serving-api, which depends on the full `tensorflow` package and would clash with
`tensorflow-cpu`; the few messages needed are therefore declared here, in a private descriptor pool, with the field
numbers of tensorflow_serving/apis/{prediction_log,predict,model}.proto, so the bytes are the same
(tests/pipeline/stages/test_export.py parses them with the official classes when those are installed).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from tensorflow.core.framework import tensor_pb2

_FILE = "rnnpipe/serving_warmup.proto"
_PACKAGE = "tensorflow.serving"
_TENSOR = ".tensorflow.TensorProto"

_T = descriptor_pb2.FieldDescriptorProto
# (message, [(field, number, type, message type)]); "inputs" is a map<string, TensorProto>.
_MESSAGES = [
    ("ModelSpec", [("name", 1, _T.TYPE_STRING, None), ("signature_name", 3, _T.TYPE_STRING, None)]),
    ("PredictRequest", [("model_spec", 1, _T.TYPE_MESSAGE, ".tensorflow.serving.ModelSpec"),
                        ("inputs", 2, _T.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest.InputsEntry")]),
    ("PredictLog", [("request", 1, _T.TYPE_MESSAGE, ".tensorflow.serving.PredictRequest")]),
    ("PredictionLog", [("predict_log", 6, _T.TYPE_MESSAGE, ".tensorflow.serving.PredictLog")]),
]  # fmt: skip


@functools.cache
def _classes() -> dict:
    pool = descriptor_pool.DescriptorPool()
    _add_with_dependencies(pool, tensor_pb2.DESCRIPTOR, set())
    file = descriptor_pb2.FileDescriptorProto(name=_FILE, package=_PACKAGE, syntax="proto3")
    file.dependency.append(tensor_pb2.DESCRIPTOR.name)
    for name, fields in _MESSAGES:
        message = file.message_type.add(name=name)
        for field, number, kind, type_name in fields:
            is_map = field == "inputs"
            message.field.add(name=field, number=number, type=kind, type_name=type_name,
                              label=_T.LABEL_REPEATED if is_map else _T.LABEL_OPTIONAL)  # fmt: skip
            if is_map:
                entry = message.nested_type.add(name="InputsEntry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=_T.TYPE_STRING, label=_T.LABEL_OPTIONAL)
                entry.field.add(name="value", number=2, type=_T.TYPE_MESSAGE, type_name=_TENSOR,
                                label=_T.LABEL_OPTIONAL)  # fmt: skip
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name, _ in _MESSAGES}  # fmt: skip


def _add_with_dependencies(pool, file_descriptor, added: set) -> None:
    if file_descriptor.name in added:
        return
    for dependency in file_descriptor.dependencies:
        _add_with_dependencies(pool, dependency, added)
    proto = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(proto)
    pool.Add(proto)
    added.add(file_descriptor.name)


def prediction_log(model_name: str, signature_name: str, inputs: Mapping[str, np.ndarray | list]) -> bytes:
    """One serialized PredictionLog holding a PredictRequest for `signature_name` with `inputs`."""
    classes = _classes()
    log = classes["PredictionLog"]()
    request = log.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].ParseFromString(tf.make_tensor_proto(value).SerializeToString())
    return log.SerializeToString()


def write_warmup_file(path, records: list[bytes]) -> None:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


def parse_prediction_log(data: bytes):
    """Our own parse of a record (for tests and inspection)."""
    log = _classes()["PredictionLog"]()
    log.ParseFromString(data)
    return log
