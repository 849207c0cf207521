from servicekit.migrations import run_env
from thoughts_service.models import Base

run_env(Base.metadata)
