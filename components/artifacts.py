"""Small helpers shared by driftguard's TFX components."""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, List


@dataclasses.dataclass(frozen=True)
class ExampleSpans:
    """What a SpanExampleGen read, as recorded on its Examples artifact."""

    spans: List[int]                    # oldest first
    labels: Dict[int, str]              # number -> label, for the spans read and the available ones
    available: List[int]                # the spans the data held up to the newest read

    @property
    def span(self) -> int:
        """The newest span read (the span a check checks)."""
        return self.spans[-1]

    def label(self, span: int) -> str:
        return self.labels.get(int(span), str(int(span)))

    @property
    def text(self) -> str:
        """The spans read, as people write them: ``7`` or ``2013-05, 2013-06``."""
        return ", ".join(self.label(s) for s in self.spans)


def example_spans(artifacts) -> ExampleSpans:
    """The spans of an Examples artifact (a list of one, as TFX passes inputs) written by
    driftguard's SpanExampleGen, which resolves them when it runs: the components downstream
    read them here, not from a span fixed when the pipeline was compiled."""
    from driftguard.components.example_gen import spec as eg_spec

    [artifact] = list(artifacts)
    if not artifact.has_custom_property(eg_spec.SPANS):
        raise ValueError(f"examples {artifact.uri} carry no '{eg_spec.SPANS}' property: they were not written by "
                         f"driftguard's SpanExampleGen")
    spans = [int(s) for s in json.loads(artifact.get_string_custom_property(eg_spec.SPANS))]
    labels = {int(k): v for k, v in json.loads(artifact.get_string_custom_property(eg_spec.SPAN_LABELS)
                                               or "{}").items()}
    available = [int(s) for s in json.loads(artifact.get_string_custom_property(eg_spec.AVAILABLE_SPANS) or "[]")]
    return ExampleSpans(spans, labels, available)
