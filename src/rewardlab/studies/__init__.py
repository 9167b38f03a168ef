"""Each paper's pipeline as a short recipe over the shared pieces. STUDIES maps CLI names to modules."""

STUDIES = {"learned-rewards": "rewardlab.studies.learned_rewards",
           "preprocessing": "rewardlab.studies.preprocessing",
           "irrl-digits": "rewardlab.studies.irrl_digits",
           "irrl-skills": "rewardlab.studies.irrl_skills",
           "ptgm": "rewardlab.studies.ptgm"}
