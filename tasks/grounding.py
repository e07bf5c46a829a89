"""placeholder until the task lands"""
