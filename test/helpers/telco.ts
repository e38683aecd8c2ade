/** The IBM Telco export kept in the repository, and the reference design's example profile. */
import path from 'node:path'

export const TELCO = path.resolve(import.meta.dirname, '../../datasets/telco-customer-churn.csv')

/** The second reference design's example of a customer likely to churn, as raw values. */
export const REFERENCE_PROFILE = {
  gender: 'Female',
  SeniorCitizen: 1,
  Partner: 'No',
  Dependents: 'No',
  tenure: 1,
  PhoneService: 'Yes',
  MultipleLines: 'No',
  InternetService: 'Fiber optic',
  OnlineSecurity: 'No',
  OnlineBackup: 'No',
  DeviceProtection: 'No',
  TechSupport: 'No',
  StreamingTV: 'No',
  StreamingMovies: 'No',
  Contract: 'Month-to-month',
  PaperlessBilling: 'Yes',
  PaymentMethod: 'Electronic check',
  MonthlyCharges: 95.75,
  TotalCharges: 95.75
}

