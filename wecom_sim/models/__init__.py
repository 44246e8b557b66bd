"""The simulated world, split by sub-domain and re-exported here."""

from wecom_sim.models.callbacks import SimCallback
from wecom_sim.models.channels import SimContactWay, SimGroupChat, SimGroupMember, SimJoinWay, SimWelcomeCode
from wecom_sim.models.media import SimMedia
from wecom_sim.models.messages import SimAppMessage, SimInboxMessage, SimMassMessage, SimMassResult, SimMassTask
from wecom_sim.models.oauth import SimOAuthApp, SimOAuthCode
from wecom_sim.models.pay import SimRedPack
from wecom_sim.models.transfers import SimTransfer
from wecom_sim.models.world import SimAccessToken, SimCorp, SimFriendship, SimMember, SimShopper, SimTag, SimTagGroup

__all__ = [
    "SimAccessToken",
    "SimAppMessage",
    "SimCallback",
    "SimContactWay",
    "SimCorp",
    "SimFriendship",
    "SimGroupChat",
    "SimGroupMember",
    "SimInboxMessage",
    "SimJoinWay",
    "SimMassMessage",
    "SimMassResult",
    "SimMassTask",
    "SimMedia",
    "SimMember",
    "SimOAuthApp",
    "SimOAuthCode",
    "SimRedPack",
    "SimShopper",
    "SimTag",
    "SimTagGroup",
    "SimTransfer",
    "SimWelcomeCode",
]
