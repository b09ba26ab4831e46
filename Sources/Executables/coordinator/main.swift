import CortexCore
import CortexOrchestration

// The coordinator ("Larry"): all logic lives in CortexOrchestration.CoordinatorService.
await CortexRuntime.main(process: "coordinator", defaultPort: 9100) { context in
    try CoordinatorService(context: context)
}
