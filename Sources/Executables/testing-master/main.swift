import CortexCore
import CortexOrchestration

// The testing master: all logic lives in CortexOrchestration.MasterService.
await CortexRuntime.main(process: "testing-master", defaultPort: 9105) { context in
    try MasterService(role: .testing, context: context)
}
