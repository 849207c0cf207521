from servicekit.migrations import run_env
from tasks_service.models import Base

run_env(Base.metadata)
