import CortexCore
import CortexOrchestration

// A worker serving the pools named by --pools / CORTEX_WORKER_POOLS: logic in CortexOrchestration.WorkerService.
await CortexRuntime.main(process: "worker", defaultPort: 9110) { context in
    try WorkerService(context: context)
}
