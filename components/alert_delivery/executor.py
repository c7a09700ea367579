"""AlertDelivery executor: decision.json's alerts -> outbox -> sinks (delivery.py) -> delivery.json."""
from __future__ import annotations

import json
import logging
import pathlib

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from driftguard.components import artifact_dirs
from driftguard.components.alert_delivery import spec
from driftguard.components.alert_delivery.delivery import deliver, delivery_settings, headline
from driftguard.components.retrain_gate.spec import DECISION_JSON

log = logging.getLogger(__name__)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        # outputs on object storage are written locally, then copied (artifact_dirs)
        with artifact_dirs.written_locally(output_dict[spec.DELIVERY_KEY]):
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties) -> None:
        decision = json.loads(artifact_dirs.read_text(artifact_utils.get_single_uri(input_dict[spec.DECISION_KEY]),
                                                      DECISION_JSON))
        config = delivery_settings(json.loads(exec_properties[spec.ALERTS_CONFIG_KEY]))
        summary = deliver(decision, config, exec_properties[spec.OUTBOX_DIR_KEY])
        log.info("%s", headline(summary))
        for error in summary["errors"]:
            log.warning("alert %s not delivered to %s: %s", error["dedup_key"], error["sink"], error["error"])
        out = artifact_utils.get_single_instance(output_dict[spec.DELIVERY_KEY])
        path = pathlib.Path(out.uri)
        path.mkdir(parents=True, exist_ok=True)
        (path / spec.DELIVERY_JSON).write_text(json.dumps(summary, indent=1, sort_keys=True))
        for name in (spec.DELIVERED, spec.PENDING, spec.FAILED):
            out.set_int_custom_property(name, summary["states"][name])
        out.set_int_custom_property(spec.DELIVERED_NOW, summary["pass"]["delivered"])
        out.set_int_custom_property(spec.N_ALERTS, summary["alerts"])
