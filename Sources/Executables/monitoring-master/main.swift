import CortexCore
import CortexOrchestration

// The monitoring master: all logic lives in CortexOrchestration.MasterService.
await CortexRuntime.main(process: "monitoring-master", defaultPort: 9106) { context in
    try MasterService(role: .monitoring, context: context)
}
