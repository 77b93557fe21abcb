"""What the providers that rent machines through a cloud API and reach them over SSH share (sky.Verda,
sky.VastAI; sky.AWS uses its key helper): a per-pool SSH key, the wait for SSH with host keys pinned at first
use, the bootstrap through `sky.SSH`, and a teardown that deletes every instance and account object on every
exit path. Each cloud contributes an adapter (`skyward.providers.rented.cloud.MachineCloud`).

Nothing is imported here, so that `skyward.providers.rented.keys` loads without the rest.
"""
