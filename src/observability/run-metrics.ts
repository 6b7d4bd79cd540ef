import { Counter, Histogram, type Registry } from 'prom-client';
import type { RunObserver } from '../runtime/run-execution.js';
import { boundChildren } from './collected-metrics.js';

/** Queue waits: from admission to a slot, seconds (a free slot is 0). */
const QUEUE_WAIT_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const RUN_DURATION_BUCKETS = [0.005, 0.05, 0.25, 1, 5, 30, 120, 600, 3600];

/** Counts runs admitted, started and finished (by agent, status and error code), with queue waits and run durations. */
export function runMetrics(registry: Registry): RunObserver {
  const admitted = new Counter({
    name: 'agentd_runs_admitted_total',
    help: 'Runs admitted on this instance (queued or running).',
    labelNames: ['agent'],
    registers: [registry],
  });
  const started = new Counter({
    name: 'agentd_runs_started_total',
    help: 'Runs that got a run slot and started running.',
    labelNames: ['agent'],
    registers: [registry],
  });
  const finished = new Counter({
    name: 'agentd_runs_finished_total',
    help: 'Runs that ended on this instance, by final status and error code (none for completed and cancelled runs).',
    labelNames: ['agent', 'status', 'error_code'],
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: 'agentd_run_queue_wait_seconds',
    help: 'Time from admission to a run slot, for runs that started (0 when a slot was free).',
    labelNames: ['agent'],
    buckets: QUEUE_WAIT_BUCKETS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'agentd_run_duration_seconds',
    help: 'Time from running to the recorded end of a run.',
    labelNames: ['agent', 'status'],
    buckets: RUN_DURATION_BUCKETS,
    registers: [registry],
  });
  const admittedOf = boundChildren((agent) => admitted.labels({ agent }));
  const startedOf = boundChildren((agent) => started.labels({ agent }));
  const queueWaitOf = boundChildren((agent) => queueWait.labels({ agent }));
  const finishedOf = boundChildren((agent, status, code) =>
    finished.labels(code === '' ? { agent, status } : { agent, status, error_code: code }),
  );
  const durationOf = boundChildren((agent, status) => duration.labels({ agent, status }));
  return {
    runAdmitted: (agent) => admittedOf(agent).inc(),
    runStarted: (agent, queueWaitMs) => {
      startedOf(agent).inc();
      queueWaitOf(agent).observe(queueWaitMs / 1000);
    },
    runFinished: (agent, status, errorCode, runningMs) => {
      finishedOf(agent, status, errorCode ?? '').inc();
      if (runningMs !== null) durationOf(agent, status).observe(runningMs / 1000);
    },
  };
}
