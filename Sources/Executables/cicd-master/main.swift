import CortexCore
import CortexOrchestration

// The cicd master: all logic lives in CortexOrchestration.MasterService.
await CortexRuntime.main(process: "cicd-master", defaultPort: 9104) { context in
    try MasterService(role: .cicd, context: context)
}
