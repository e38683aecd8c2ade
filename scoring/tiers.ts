/**
 * Risk tiers: thresholds with hysteresis, the reference design's recommended actions, the
 * campaign channels each tier triggers, and when a new score is worth an event.
 */
import type { RiskTier } from '../schemas/types.generated.ts'

export type { RiskTier }

export const TIERS: readonly RiskTier[] = ['low', 'medium', 'high']

export interface TierPolicy {
  /** Probability from which a subscriber is high risk (the reference: 0.65). */
  high: number
  /** Probability from which a subscriber is medium risk (the reference: 0.35). */
  medium: number
  /** How far below a threshold the probability must fall before the tier drops. */
  hysteresis: number
  /** Within a tier, how far the probability must move before another event. */
  emitMargin: number
}

/** The reference design's three actions, by tier. */
export const RECOMMENDED_ACTIONS: Readonly<Record<RiskTier, string>> = {
  high: 'Assign retention manager & offer loyalty bundle immediately.',
  medium: 'Send proactive win-back offer via SMS campaign.',
  low: 'Standard engagement; monitor next billing cycle.'
}

const RANK: Readonly<Record<RiskTier, number>> = { low: 0, medium: 1, high: 2 }

/** The tier by thresholds alone (what a stateless caller such as the HTTP API reports). */
export function tierOf (probability: number, policy: Pick<TierPolicy, 'high' | 'medium'>): RiskTier {
  return probability >= policy.high ? 'high' : probability >= policy.medium ? 'medium' : 'low'
}

/**
 * The tier given the subscriber's current one: rising needs the threshold, falling needs the
 * probability below the threshold minus the hysteresis, so a score hovering at 0.65 stays put.
 */
export function nextTier (probability: number, current: RiskTier | null, policy: TierPolicy): RiskTier {
  const plain = tierOf(probability, policy)
  if (current === null || RANK[plain] >= RANK[current]) return plain
  // Falling: keep each tier at or below the current one whose threshold, lowered, is still met.
  if (current === 'high' && probability >= policy.high - policy.hysteresis) return 'high'
  if (RANK[current] >= RANK.medium && probability >= policy.medium - policy.hysteresis) return 'medium'
  return 'low'
}

/** An event is due on the first score, on a tier change, or when the probability moved beyond the margin. */
export function shouldEmit (tier: RiskTier, probability: number, last: { tier: RiskTier, probability: number } | null, policy: Pick<TierPolicy, 'emitMargin'>): boolean {
  if (last === null) return true
  return tier !== last.tier || Math.abs(probability - last.probability) > policy.emitMargin
}
