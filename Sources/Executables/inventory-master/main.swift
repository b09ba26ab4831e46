import CortexCore
import CortexOrchestration

// The inventory master: all logic lives in CortexOrchestration.MasterService.
await CortexRuntime.main(process: "inventory-master", defaultPort: 9103) { context in
    try MasterService(role: .inventory, context: context)
}
