import CortexCore
import CortexOrchestration

// The development master: all logic lives in CortexOrchestration.MasterService.
await CortexRuntime.main(process: "development-master", defaultPort: 9102) { context in
    try MasterService(role: .development, context: context)
}
