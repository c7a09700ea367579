"""Parquet -> tf.Example for FileBasedExampleGen, zeros kept.

TFX 1.16's own Parquet executor (``tfx.components.example_gen.custom_executors.
parquet_executor``) converts each row with ``utils.dict_to_example``, which tests ``if not
pyval`` and so writes every 0 and 0.0 as a missing value: a flight that arrived exactly on
time (arrival delay 0: its label) became unlabelled, a dry hour (precipitation 0) a missing
reading. This executor reads Parquet in Arrow batches (Beam's ``ReadFromParquetBatched``) and
encodes them with the same C++ encoder as the rest of driftguard
(``driftguard.components.model_io.encode_examples``): a null (or a float NaN) is a missing
value, anything else is a value, zeros included. It is also much faster than a Python dict
per row.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import apache_beam as beam
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs


def _encode(table) -> List[bytes]:
    from driftguard.components.model_io import encode_examples

    return encode_examples(table)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(bytes)
def _ParquetToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):  # noqa: N802
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return (pipeline
            | "ReadFromParquetBatched" >> beam.io.ReadFromParquetBatched(pattern)
            | "ToSerializedExamples" >> beam.FlatMap(_encode))


class Executor(BaseExampleGenExecutor):
    """FileBasedExampleGen executor for Parquet files (serialized tf.Example out)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX's name)
        return _ParquetToExample
