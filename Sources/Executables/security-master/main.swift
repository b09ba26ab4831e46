import CortexCore
import CortexOrchestration

// The security master: all logic lives in CortexOrchestration.MasterService.
await CortexRuntime.main(process: "security-master", defaultPort: 9101) { context in
    try MasterService(role: .security, context: context)
}
