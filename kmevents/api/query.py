"""``GET /v1/clusters/...``: the derived state, its past, histories and search, assembled from
``state_routes`` (live and point-in-time reads), ``incident_routes`` (history, search) and
``archive_routes`` (the log as an archive); what they share is in ``query_base``.

Every read is live (etcd at one revision) or time travel (the replay engine): see
``state_routes``. Bad parameters answer 422 with the parameter's path (``["query", "at"]``).
"""

from fastapi import APIRouter

from kmevents.api.archive_routes import router as archive_router
from kmevents.api.incident_routes import router as incident_router
from kmevents.api.state_routes import router as state_router

router = APIRouter()
# Order matters: /{cluster}/history, /search and /archive before the /{cluster}/{kind} catch-alls.
router.include_router(incident_router)
router.include_router(archive_router)
router.include_router(state_router)
